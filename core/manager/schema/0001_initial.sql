-- SPDX-License-Identifier: Apache-2.0
-- Initial manager schema, following Backend.AI's model: tenancy, users, keypairs, policies, resource groups, agents, images, sessions, kernels.

-- Resource slots ({"cpu": "2", "mem": "4294967296", "cuda.device": "1"}) are JSONB
-- objects of decimal strings, as Backend.AI keeps them. Statuses are text with CHECK
-- constraints, so adding one is a migration, never a silent typo.

CREATE TABLE domains (
    name                  varchar(64) PRIMARY KEY,
    description           text,
    is_active             boolean NOT NULL DEFAULT true,
    created_at            timestamptz NOT NULL DEFAULT now(),
    modified_at           timestamptz NOT NULL DEFAULT now(),
    total_resource_slots  jsonb NOT NULL DEFAULT '{}',
    allowed_vfolder_hosts jsonb NOT NULL DEFAULT '{}',
    allowed_docker_registries text[] NOT NULL DEFAULT '{}',
    integration_id        varchar(512),
    dotfiles              bytea NOT NULL DEFAULT '\x90'
);

CREATE TABLE keypair_resource_policies (
    name                       varchar(256) PRIMARY KEY,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    default_for_unspecified    text NOT NULL DEFAULT 'LIMITED'
        CHECK (default_for_unspecified IN ('LIMITED', 'UNLIMITED')),
    total_resource_slots       jsonb NOT NULL DEFAULT '{}',
    max_session_lifetime       integer NOT NULL DEFAULT 0 CHECK (max_session_lifetime >= 0),
    max_concurrent_sessions    integer NOT NULL DEFAULT 30 CHECK (max_concurrent_sessions >= 0),
    max_pending_session_count  integer CHECK (max_pending_session_count >= 0),
    max_pending_session_resource_slots jsonb,
    max_concurrent_sftp_sessions integer NOT NULL DEFAULT 1,
    max_containers_per_session integer NOT NULL DEFAULT 1 CHECK (max_containers_per_session >= 1),
    idle_timeout               bigint NOT NULL DEFAULT 0 CHECK (idle_timeout >= 0),
    allowed_vfolder_hosts      jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE user_resource_policies (
    name                  varchar(256) PRIMARY KEY,
    created_at            timestamptz NOT NULL DEFAULT now(),
    max_vfolder_count     integer NOT NULL DEFAULT 0 CHECK (max_vfolder_count >= 0),
    max_quota_scope_size  bigint NOT NULL DEFAULT -1,
    max_session_count_per_model_session integer NOT NULL DEFAULT 10,
    max_customized_image_count integer NOT NULL DEFAULT 3
);

CREATE TABLE project_resource_policies (
    name                  varchar(256) PRIMARY KEY,
    created_at            timestamptz NOT NULL DEFAULT now(),
    max_vfolder_count     integer NOT NULL DEFAULT 0 CHECK (max_vfolder_count >= 0),
    max_quota_scope_size  bigint NOT NULL DEFAULT -1,
    max_network_count     integer NOT NULL DEFAULT 3
);

CREATE TABLE groups (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                  varchar(64) NOT NULL,
    description           text,
    is_active             boolean NOT NULL DEFAULT true,
    created_at            timestamptz NOT NULL DEFAULT now(),
    modified_at           timestamptz NOT NULL DEFAULT now(),
    domain_name           varchar(64) NOT NULL REFERENCES domains (name)
                              ON UPDATE CASCADE ON DELETE CASCADE,
    type                  text NOT NULL DEFAULT 'general' CHECK (type IN ('general', 'model-store')),
    total_resource_slots  jsonb NOT NULL DEFAULT '{}',
    allowed_vfolder_hosts jsonb NOT NULL DEFAULT '{}',
    integration_id        varchar(512),
    resource_policy       varchar(256) NOT NULL REFERENCES project_resource_policies (name),
    dotfiles              bytea NOT NULL DEFAULT '\x90',
    UNIQUE (name, domain_name)
);

CREATE TABLE users (
    uuid                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    username              varchar(64) UNIQUE,
    email                 varchar(64) NOT NULL UNIQUE,
    password              varchar(128),  -- a hash (scheme-prefixed), never the password
    need_password_change  boolean NOT NULL DEFAULT false,
    password_changed_at   timestamptz,
    full_name             varchar(64),
    description           varchar(500),
    status                text NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'inactive', 'deleted', 'before-verification')),
    status_info           text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    modified_at           timestamptz NOT NULL DEFAULT now(),
    domain_name           varchar(64) REFERENCES domains (name),
    role                  text NOT NULL DEFAULT 'user'
        CHECK (role IN ('superadmin', 'admin', 'user', 'monitor')),
    allowed_client_ip     text[],
    totp_key              varchar(32),
    totp_activated        boolean NOT NULL DEFAULT false,
    resource_policy       varchar(256) NOT NULL REFERENCES user_resource_policies (name),
    sudo_session_enabled  boolean NOT NULL DEFAULT false,
    main_access_key       varchar(20)
);
CREATE INDEX ix_users_domain_name ON users (domain_name);

CREATE TABLE association_groups_users (
    user_id  uuid NOT NULL REFERENCES users (uuid) ON UPDATE CASCADE ON DELETE CASCADE,
    group_id uuid NOT NULL REFERENCES groups (id) ON UPDATE CASCADE ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX ix_agu_user_id ON association_groups_users (user_id);

CREATE TABLE keypairs (
    access_key            varchar(20) PRIMARY KEY,
    secret_key            varchar(40) NOT NULL,
    user_id               varchar(256),           -- the user's email, as Backend.AI keeps it
    "user"                uuid NOT NULL REFERENCES users (uuid) ON DELETE CASCADE,
    is_active             boolean NOT NULL DEFAULT true,
    is_admin              boolean NOT NULL DEFAULT false,
    created_at            timestamptz NOT NULL DEFAULT now(),
    modified_at           timestamptz NOT NULL DEFAULT now(),
    last_used             timestamptz,
    rate_limit            integer NOT NULL DEFAULT 1000,
    num_queries           integer NOT NULL DEFAULT 0,
    ssh_public_key        text,
    ssh_private_key       text,
    resource_policy       varchar(256) NOT NULL REFERENCES keypair_resource_policies (name),
    dotfiles              bytea NOT NULL DEFAULT '\x90',
    bootstrap_script      text NOT NULL DEFAULT ''
);
CREATE INDEX ix_keypairs_user ON keypairs ("user");
CREATE INDEX ix_keypairs_is_active ON keypairs (is_active);
ALTER TABLE users ADD CONSTRAINT fk_users_main_access_key
    FOREIGN KEY (main_access_key) REFERENCES keypairs (access_key) ON DELETE SET NULL
    DEFERRABLE INITIALLY DEFERRED;

-- Resource groups ("scaling groups" in Backend.AI's tables).
CREATE TABLE scaling_groups (
    name                  varchar(64) PRIMARY KEY,
    description           text,
    is_active             boolean NOT NULL DEFAULT true,
    is_public             boolean NOT NULL DEFAULT true,
    created_at            timestamptz NOT NULL DEFAULT now(),
    wsproxy_addr          varchar(1024),
    wsproxy_api_token     varchar(1024),
    driver                varchar(64) NOT NULL DEFAULT 'static',
    driver_opts           jsonb NOT NULL DEFAULT '{}',
    scheduler             varchar(64) NOT NULL DEFAULT 'fifo',
    scheduler_opts        jsonb NOT NULL DEFAULT '{}',
    agent_selector        varchar(64) NOT NULL DEFAULT 'concentrated',
    agent_selector_opts   jsonb NOT NULL DEFAULT '{}',
    use_host_network      boolean NOT NULL DEFAULT false
);

CREATE TABLE sgroups_for_domains (
    scaling_group varchar(64) NOT NULL REFERENCES scaling_groups (name)
                      ON UPDATE CASCADE ON DELETE CASCADE,
    domain        varchar(64) NOT NULL REFERENCES domains (name)
                      ON UPDATE CASCADE ON DELETE CASCADE,
    PRIMARY KEY (scaling_group, domain)
);

CREATE TABLE sgroups_for_groups (
    scaling_group varchar(64) NOT NULL REFERENCES scaling_groups (name)
                      ON UPDATE CASCADE ON DELETE CASCADE,
    "group"       uuid NOT NULL REFERENCES groups (id) ON UPDATE CASCADE ON DELETE CASCADE,
    PRIMARY KEY (scaling_group, "group")
);

CREATE TABLE sgroups_for_keypairs (
    scaling_group varchar(64) NOT NULL REFERENCES scaling_groups (name)
                      ON UPDATE CASCADE ON DELETE CASCADE,
    access_key    varchar(20) NOT NULL REFERENCES keypairs (access_key)
                      ON UPDATE CASCADE ON DELETE CASCADE,
    PRIMARY KEY (scaling_group, access_key)
);

CREATE TABLE agents (
    id                    varchar(64) PRIMARY KEY,   -- agent ids are names chosen by the agent
    status                text NOT NULL DEFAULT 'ALIVE'
        CHECK (status IN ('ALIVE', 'LOST', 'RESTARTING', 'TERMINATED')),
    status_changed        timestamptz,
    region                varchar(64) NOT NULL DEFAULT 'local',
    scaling_group         varchar(64) NOT NULL DEFAULT 'default' REFERENCES scaling_groups (name),
    schedulable           boolean NOT NULL DEFAULT true,
    available_slots       jsonb NOT NULL DEFAULT '{}',
    occupied_slots        jsonb NOT NULL DEFAULT '{}',
    addr                  varchar(128) NOT NULL,
    public_host           varchar(256),
    first_contact         timestamptz NOT NULL DEFAULT now(),
    lost_at               timestamptz,
    version               varchar(64) NOT NULL DEFAULT '',
    architecture          varchar(32) NOT NULL DEFAULT 'x86_64',
    compute_plugins       jsonb NOT NULL DEFAULT '{}',
    auto_terminate_abusing_kernel boolean NOT NULL DEFAULT false
);
CREATE INDEX ix_agents_status_sgroup ON agents (status, scaling_group) WHERE schedulable;

CREATE TABLE container_registries (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    url                   varchar(512) NOT NULL,
    registry_name         varchar(128) NOT NULL,
    type                  varchar(32) NOT NULL DEFAULT 'docker',
    project               varchar(255),
    username              varchar(255),
    password              varchar(255),  -- registry credential; never logged
    ssl_verify            boolean NOT NULL DEFAULT true,
    is_global             boolean NOT NULL DEFAULT true,
    extra                 jsonb,
    UNIQUE (registry_name, project)
);

CREATE TABLE images (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                  varchar(512) NOT NULL,   -- canonical "registry/project/name:tag"
    project               varchar(255),
    image                 varchar(255) NOT NULL,   -- "project/name" within the registry
    tag                   varchar(128) NOT NULL,
    registry              varchar(255) NOT NULL,
    registry_id           uuid REFERENCES container_registries (id) ON DELETE SET NULL,
    architecture          varchar(32) NOT NULL DEFAULT 'x86_64',
    config_digest         char(72) NOT NULL DEFAULT '',
    size_bytes            bigint NOT NULL DEFAULT 0,
    is_local              boolean NOT NULL DEFAULT false,
    type                  text NOT NULL DEFAULT 'COMPUTE' CHECK (type IN ('COMPUTE', 'SYSTEM', 'SERVICE')),
    accelerators          varchar(255),
    labels                jsonb NOT NULL DEFAULT '{}',
    resources             jsonb NOT NULL DEFAULT '{}',
    status                text NOT NULL DEFAULT 'ALIVE' CHECK (status IN ('ALIVE', 'DELETED')),
    created_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, architecture)
);

CREATE TABLE image_aliases (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    alias                 varchar(128) NOT NULL UNIQUE,
    image_id              uuid NOT NULL REFERENCES images (id) ON DELETE CASCADE
);

CREATE TABLE sessions (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    creation_id           varchar(32),
    name                  varchar(64),
    session_type          text NOT NULL DEFAULT 'interactive'
        CHECK (session_type IN ('interactive', 'batch', 'inference', 'system')),
    priority              integer NOT NULL DEFAULT 10,
    cluster_mode          text NOT NULL DEFAULT 'single-node'
        CHECK (cluster_mode IN ('single-node', 'multi-node')),
    cluster_size          integer NOT NULL DEFAULT 1 CHECK (cluster_size >= 1),
    agent_ids             varchar(64)[],
    domain_name           varchar(64) NOT NULL REFERENCES domains (name),
    group_id              uuid NOT NULL REFERENCES groups (id),
    user_uuid             uuid NOT NULL REFERENCES users (uuid),
    access_key            varchar(20) REFERENCES keypairs (access_key),
    scaling_group_name    varchar(64) REFERENCES scaling_groups (name),
    target_sgroup_names   varchar(64)[] DEFAULT '{}',
    images                varchar(512)[],          -- canonical names of the kernels' images
    tag                   varchar(64),
    architecture          varchar(32) NOT NULL DEFAULT 'x86_64',
    occupying_slots       jsonb NOT NULL DEFAULT '{}',
    requested_slots       jsonb NOT NULL DEFAULT '{}',
    vfolder_mounts        jsonb,
    environ               jsonb,
    bootstrap_script      text,
    use_host_network      boolean NOT NULL DEFAULT false,
    timeout               bigint,
    batch_timeout         bigint,
    created_at            timestamptz NOT NULL DEFAULT now(),
    terminated_at         timestamptz,
    starts_at             timestamptz,
    status                text NOT NULL DEFAULT 'PENDING'
        CHECK (status IN ('PENDING', 'SCHEDULED', 'PREPARING', 'PULLING', 'PREPARED',
                          'CREATING', 'RUNNING', 'RESTARTING', 'RUNNING_DEGRADED',
                          'TERMINATING', 'TERMINATED', 'ERROR', 'CANCELLED')),
    status_info           text,
    status_data           jsonb,
    status_history        jsonb NOT NULL DEFAULT '{}',
    callback_url          text,
    startup_command       text,
    result                text NOT NULL DEFAULT 'UNDEFINED'
        CHECK (result IN ('UNDEFINED', 'SUCCESS', 'FAILURE')),
    num_queries           bigint NOT NULL DEFAULT 0,
    last_stat             jsonb
);
-- The scheduler scans each resource group's pending queue in priority, then arrival, order.
CREATE INDEX ix_sessions_pending_queue ON sessions (scaling_group_name, priority DESC, created_at)
    WHERE status = 'PENDING';
CREATE INDEX ix_sessions_access_key_status ON sessions (access_key, status);
CREATE INDEX ix_sessions_user_status ON sessions (user_uuid, status);
CREATE INDEX ix_sessions_status ON sessions (status);
CREATE INDEX ix_sessions_created_at ON sessions (created_at);
-- A live session's name is unique per access key (Backend.AI's rule); ended ones may repeat.
CREATE UNIQUE INDEX ux_sessions_live_name ON sessions (access_key, name)
    WHERE status NOT IN ('TERMINATED', 'CANCELLED', 'ERROR');

CREATE TABLE kernels (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id            uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    session_creation_id   varchar(32),
    session_name          varchar(64),
    session_type          text NOT NULL DEFAULT 'interactive',
    cluster_mode          text NOT NULL DEFAULT 'single-node',
    cluster_size          integer NOT NULL DEFAULT 1,
    cluster_role          varchar(16) NOT NULL DEFAULT 'main',
    cluster_idx           integer NOT NULL DEFAULT 0,
    local_rank            integer NOT NULL DEFAULT 0,
    cluster_hostname      varchar(64) NOT NULL DEFAULT 'main1',
    uid                   integer,
    main_gid              integer,
    gids                  integer[],
    scaling_group         varchar(64) REFERENCES scaling_groups (name),
    agent                 varchar(64) REFERENCES agents (id),
    agent_addr            varchar(128),
    domain_name           varchar(64) NOT NULL REFERENCES domains (name),
    group_id              uuid NOT NULL REFERENCES groups (id),
    user_uuid             uuid NOT NULL REFERENCES users (uuid),
    access_key            varchar(20) REFERENCES keypairs (access_key),
    image                 varchar(512),
    architecture          varchar(32) NOT NULL DEFAULT 'x86_64',
    registry              varchar(512),
    tag                   varchar(64),
    container_id          varchar(64),
    occupied_slots        jsonb NOT NULL DEFAULT '{}',
    requested_slots       jsonb NOT NULL DEFAULT '{}',
    occupied_shares       jsonb NOT NULL DEFAULT '{}',
    environ               text[],
    mounts                text[],
    mount_map             jsonb,
    vfolder_mounts        jsonb,
    attached_devices      jsonb NOT NULL DEFAULT '{}',
    resource_opts         jsonb NOT NULL DEFAULT '{}',
    bootstrap_script      text,
    kernel_host           varchar(128),
    repl_in_port          integer NOT NULL DEFAULT 0,
    repl_out_port         integer NOT NULL DEFAULT 0,
    stdin_port            integer NOT NULL DEFAULT 0,
    stdout_port           integer NOT NULL DEFAULT 0,
    service_ports         jsonb,
    preopen_ports         integer[],
    use_host_network      boolean NOT NULL DEFAULT false,
    created_at            timestamptz NOT NULL DEFAULT now(),
    terminated_at         timestamptz,
    starts_at             timestamptz,
    status                text NOT NULL DEFAULT 'PENDING'
        CHECK (status IN ('PENDING', 'SCHEDULED', 'PREPARING', 'PULLING', 'PREPARED',
                          'BUILDING', 'CREATING', 'RUNNING', 'RESTARTING', 'RESIZING',
                          'SUSPENDED', 'TERMINATING', 'TERMINATED', 'ERROR', 'CANCELLED')),
    status_changed        timestamptz,
    status_info           text,
    status_data           jsonb,
    status_history        jsonb NOT NULL DEFAULT '{}',
    callback_url          text,
    startup_command       text,
    result                text NOT NULL DEFAULT 'UNDEFINED'
        CHECK (result IN ('UNDEFINED', 'SUCCESS', 'FAILURE')),
    internal_data         jsonb,
    container_log         bytea,
    num_queries           bigint NOT NULL DEFAULT 0,
    last_stat             jsonb,
    UNIQUE (session_id, cluster_role, cluster_idx)
);
CREATE INDEX ix_kernels_session_id ON kernels (session_id);
CREATE INDEX ix_kernels_agent_status ON kernels (agent, status);
CREATE INDEX ix_kernels_access_key_status ON kernels (access_key, status);
CREATE INDEX ix_kernels_status ON kernels (status);

CREATE TABLE session_dependencies (
    session_id            uuid NOT NULL REFERENCES sessions (id) ON UPDATE CASCADE ON DELETE CASCADE,
    depends_on            uuid NOT NULL REFERENCES sessions (id) ON UPDATE CASCADE ON DELETE CASCADE,
    PRIMARY KEY (session_id, depends_on),
    CHECK (session_id <> depends_on)
);
CREATE INDEX ix_session_dependencies_depends_on ON session_dependencies (depends_on);

CREATE TABLE resource_presets (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                  varchar(256) NOT NULL,
    resource_slots        jsonb NOT NULL DEFAULT '{}',
    shared_memory         bigint,
    scaling_group_name    varchar(64) REFERENCES scaling_groups (name) ON DELETE CASCADE
);
-- One preset name globally and one per resource group (NULL groups are distinct in UNIQUE).
CREATE UNIQUE INDEX ux_resource_presets_global ON resource_presets (name)
    WHERE scaling_group_name IS NULL;
CREATE UNIQUE INDEX ux_resource_presets_sgroup ON resource_presets (name, scaling_group_name)
    WHERE scaling_group_name IS NOT NULL;

-- Cluster-wide shared configuration (what Backend.AI keeps in etcd), keyed by path
-- such as 'config/docker/registry/...'; values are JSON.
CREATE TABLE shared_config (
    key                   varchar(512) PRIMARY KEY,
    value                 jsonb NOT NULL,
    updated_at            timestamptz NOT NULL DEFAULT now()
);
