-- SPDX-License-Identifier: Apache-2.0
-- Virtual folders, following Backend.AI's model: a folder lives on a storage host
-- ("proxy:volume"), is owned by a user or a project (group), and is shared with other
-- users through invitations (project folders: through group membership).

CREATE TABLE vfolders (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    host                  varchar(128) NOT NULL,          -- "proxy:volume"
    domain_name           varchar(64) NOT NULL REFERENCES domains (name),
    quota_scope_id        varchar(64) NOT NULL,           -- "user:<uuid>" or "project:<uuid>"
    name                  varchar(64) NOT NULL,
    usage_mode            text NOT NULL DEFAULT 'general'
        CHECK (usage_mode IN ('general', 'model', 'data')),
    permission            text NOT NULL DEFAULT 'rw' CHECK (permission IN ('ro', 'rw', 'wd')),
    max_files             integer NOT NULL DEFAULT 0,
    max_size              bigint,                          -- MiB, NULL = unlimited
    num_files             integer NOT NULL DEFAULT 0,
    cur_size              bigint NOT NULL DEFAULT 0,
    created_at            timestamptz NOT NULL DEFAULT now(),
    last_used             timestamptz,
    creator               varchar(128),                    -- email
    unmanaged_path        text,
    ownership_type        text NOT NULL DEFAULT 'user' CHECK (ownership_type IN ('user', 'group')),
    "user"                uuid REFERENCES users (uuid) ON DELETE CASCADE,
    "group"               uuid REFERENCES groups (id) ON DELETE CASCADE,
    cloneable             boolean NOT NULL DEFAULT false,
    status                text NOT NULL DEFAULT 'ready'
        CHECK (status IN ('ready', 'performing', 'cloning', 'mounted', 'error',
                          'delete-pending', 'delete-ongoing', 'delete-complete', 'delete-error')),
    status_history        jsonb NOT NULL DEFAULT '{}',
    status_changed        timestamptz,
    CHECK ((ownership_type = 'user' AND "user" IS NOT NULL AND "group" IS NULL) OR
           (ownership_type = 'group' AND "group" IS NOT NULL AND "user" IS NULL))
);
-- A live folder's name is unique per owner; purged ones (delete-complete) may repeat.
CREATE UNIQUE INDEX ux_vfolders_user_name ON vfolders ("user", name)
    WHERE "user" IS NOT NULL AND status <> 'delete-complete';
CREATE UNIQUE INDEX ux_vfolders_group_name ON vfolders ("group", name)
    WHERE "group" IS NOT NULL AND status <> 'delete-complete';
CREATE INDEX ix_vfolders_host ON vfolders (host);

-- Per-user grants on a folder (accepted invitations, shares of project folders).
CREATE TABLE vfolder_permissions (
    vfolder               uuid NOT NULL REFERENCES vfolders (id) ON DELETE CASCADE,
    "user"                uuid NOT NULL REFERENCES users (uuid) ON DELETE CASCADE,
    permission            text NOT NULL DEFAULT 'rw' CHECK (permission IN ('ro', 'rw', 'wd')),
    PRIMARY KEY (vfolder, "user")
);
CREATE INDEX ix_vfolder_permissions_user ON vfolder_permissions ("user");

CREATE TABLE vfolder_invitations (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    permission            text NOT NULL DEFAULT 'rw' CHECK (permission IN ('ro', 'rw', 'wd')),
    inviter               varchar(256) NOT NULL,           -- email
    invitee               varchar(256) NOT NULL,           -- email
    state                 text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'accepted', 'rejected', 'canceled')),
    created_at            timestamptz NOT NULL DEFAULT now(),
    modified_at           timestamptz NOT NULL DEFAULT now(),
    vfolder               uuid NOT NULL REFERENCES vfolders (id) ON DELETE CASCADE
);
CREATE INDEX ix_vfolder_invitations_invitee ON vfolder_invitations (invitee, state);

-- Background tasks (folder clone, ...) whose progress /events/background-task streams.
CREATE TABLE background_tasks (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind                  varchar(64) NOT NULL,
    access_key            varchar(20) REFERENCES keypairs (access_key) ON DELETE CASCADE,
    status                text NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'done', 'failed', 'cancelled')),
    current_progress      bigint NOT NULL DEFAULT 0,
    total_progress        bigint NOT NULL DEFAULT 0,
    message               text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
