/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the TOML config reader (core/config): trees, errors and typed lookups. */

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <baic/errors.h>

#include "baic_check.h"
#include "config/config.h"

#define FIXTURE(name) BAIC_SOURCE_DIR "/tests/fixtures/config/" name

static char err[512];

static json_t *parse_ok(const char *text) {
    json_t *root = NULL;
    int rc = baic_config_parse_string(text, strlen(text), "<string>", &root, err, sizeof(err));
    ck_assert_msg(rc == 0, "parse failed (%d): %s\n--- input ---\n%s", rc, err, text);
    ck_assert_ptr_nonnull(root);
    return root;
}

/* Parses toml and compares the tree with the JSON text want. */
#define expect_tree(toml, want) expect_tree_at(__LINE__, toml, want)
static void expect_tree_at(int line, const char *toml, const char *want) {
    json_t *got = parse_ok(toml);
    json_error_t jerr;
    json_t *exp = json_loads(want, JSON_DECODE_ANY, &jerr);
    ck_assert_msg(exp != NULL, "line %d: bad expected JSON: %s", line, jerr.text);
    if (!json_equal(got, exp)) {
        char *g = json_dumps(got, JSON_SORT_KEYS | JSON_ENCODE_ANY);
        char *e = json_dumps(exp, JSON_SORT_KEYS | JSON_ENCODE_ANY);
        ck_abort_msg("line %d: tree mismatch\n got: %s\nwant: %s", line, g, e);
    }
    json_decref(got);
    json_decref(exp);
}

/* Parses toml, expects a syntax error whose message starts with want (position included). */
#define expect_err(toml, want) expect_err_len_at(__LINE__, toml, strlen(toml), want)
#define expect_err_len(toml, len, want) expect_err_len_at(__LINE__, toml, len, want)
static void expect_err_len_at(int line, const char *toml, size_t len, const char *want) {
    json_t *root = (json_t *)0x1;
    memset(err, 0, sizeof(err));
    int rc = baic_config_parse_string(toml, len, "t.toml", &root, err, sizeof(err));
    ck_assert_msg(rc == BAIC_ECONFIG_SYNTAX, "line %d: expected a syntax error, got %d", line, rc);
    ck_assert_msg(root == NULL, "line %d: out not cleared on error", line);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0,
                  "line %d: message\n  '%s'\nwant prefix\n  '%s'", line, err, want);
}

/* ---- documents -------------------------------------------------------------------------- */

START_TEST(test_manager_toml) {
    json_t *root = NULL;
    int rc = baic_config_parse_file(FIXTURE("manager.toml"), &root, err, sizeof(err));
    ck_assert_msg(rc == 0, "%s", err);

    const json_t *load = baic_config_get(root, "plugins.load");
    ck_assert(json_is_array(load));
    ck_assert_int_eq(json_array_size(load), 2);
    ck_assert_str_eq(json_string_value(json_array_get(load, 0)), "auth/password");
    ck_assert_str_eq(json_string_value(json_array_get(load, 1)), "monitor/prometheus");

    const char *s = NULL;
    ck_assert_int_eq(baic_config_get_string(root, "plugin.\"monitor/prometheus\".addr", NULL, &s,
                                            err, sizeof(err)),
                     0);
    ck_assert_str_eq(s, "127.0.0.1:9091");
    ck_assert_int_eq(baic_config_get_string(root, "manager.db.dsn", NULL, &s, err, sizeof(err)), 0);
    ck_assert_str_eq(s, "postgresql://postgres:develove@localhost:5432/backend");
    ck_assert_str_eq(json_string_value(baic_config_get(root, "manager.started")),
                     "2024-03-01T09:30:00+09:00");
    ck_assert_str_eq(json_string_value(baic_config_get(root, "manager.id")), "i-manager");

    long long n = 0;
    ck_assert_int_eq(baic_config_get_int(root, "etcd.addr.port", 0, &n, err, sizeof(err)), 0);
    ck_assert_int_eq(n, 2379);
    ck_assert_int_eq(
        baic_config_get_int(root, "plugin.\"auth/password\".min-length", 0, &n, err, sizeof(err)),
        0);
    ck_assert_int_eq(n, 8);
    ck_assert_int_eq(
        baic_config_get_int(root, "logging.file.rotation-size", 0, &n, err, sizeof(err)), 0);
    ck_assert_int_eq(n, 10485760);
    ck_assert(json_real_value(baic_config_get(root, "manager.heartbeat-timeout")) == 40.0);

    int b = -1;
    ck_assert_int_eq(baic_config_get_bool(root, "manager.ssl-enabled", 1, &b, err, sizeof(err)), 0);
    ck_assert_int_eq(b, 0);
    ck_assert_int_eq(baic_config_get_bool(root, "manager.hide-agents", 0, &b, err, sizeof(err)), 0);
    ck_assert_int_eq(b, 1);

    const json_t *groups = baic_config_get(root, "manager.scaling-group");
    ck_assert_int_eq(json_array_size(groups), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(groups, 1), "scheduler")),
                     "drf");
    const json_t *drivers = baic_config_get(root, "logging.drivers");
    ck_assert_int_eq(json_array_size(drivers), 2);
    json_decref(root);
}
END_TEST

START_TEST(test_comments_and_blank_lines) {
    expect_tree("", "{}");
    expect_tree("\n\n   \t\n", "{}");
    expect_tree("# only a comment", "{}");
    expect_tree("# c1\r\n  # c2 \t with tab\na = 1 # trailing\r\n# end", "{\"a\":1}");
    expect_tree("a = 1#no space", "{\"a\":1}");
    expect_tree("# comment with é and 日本 and # and \"quotes\"\nb = true", "{\"b\":true}");
    expect_tree("\xEF\xBB\xBF"
                "a = 1\n",
                "{\"a\":1}"); /* byte-order mark */
    expect_tree("[t] # comment after a header\nx = 1", "{\"t\":{\"x\":1}}");
}
END_TEST

START_TEST(test_keys) {
    expect_tree("bare_key = 1\nbare-key = 2\n1234 = 3\nABC = 4",
                "{\"bare_key\":1,\"bare-key\":2,\"1234\":3,\"ABC\":4}");
    expect_tree("\"127.0.0.1\" = 1\n\"character encoding\" = 2\n'key2' = 3\n'quoted \"v\"' = 4",
                "{\"127.0.0.1\":1,\"character encoding\":2,\"key2\":3,\"quoted \\\"v\\\"\":4}");
    expect_tree("\"ʎǝʞ\" = 1\n\"\\u00e9\" = 2", "{\"ʎǝʞ\":1,\"é\":2}");
    expect_tree("\"\" = 'blank'", "{\"\":\"blank\"}");
    expect_tree("'' = 'blank'", "{\"\":\"blank\"}");
    expect_tree("physical.color = \"orange\"\nphysical.shape = \"round\"\n"
                "site.\"google.com\" = true",
                "{\"physical\":{\"color\":\"orange\",\"shape\":\"round\"},"
                "\"site\":{\"google.com\":true}}");
    expect_tree("fruit . name\t=\"banana\"\nfruit. color = 'yellow'",
                "{\"fruit\":{\"name\":\"banana\",\"color\":\"yellow\"}}");
    expect_tree("3.14159 = \"pi\"", "{\"3\":{\"14159\":\"pi\"}}");
    expect_tree("a.b.c.d = 1\na.b.e = 2\na.f = 3",
                "{\"a\":{\"b\":{\"c\":{\"d\":1},\"e\":2},\"f\":3}}");
    expect_tree("true = 1\nfalse = 2\ninf = 3\nnan = 4",
                "{\"true\":1,\"false\":2,\"inf\":3,\"nan\":4}");
}
END_TEST

START_TEST(test_basic_string_escapes) {
    expect_tree("s = \"\\b\\t\\n\\f\\r\\\"\\\\\"", "{\"s\":\"\\b\\t\\n\\f\\r\\\"\\\\\"}");
    expect_tree("s = \"\\u0041\\u00e9\\u20AC\\uFFFD\"", "{\"s\":\"Aé€\xEF\xBF\xBD\"}");
    expect_tree("s = \"\\U0001F600\\U00000041\\U0010FFFF\"", "{\"s\":\"\xF0\x9F\x98\x80"
                                                             "A\xF4\x8F\xBF\xBF\"}");
    expect_tree("s = \"\\u007F\\u0001\"", "{\"s\":\"\\u007f\\u0001\"}");
    expect_tree("s = \"tab\there\"", "{\"s\":\"tab\\there\"}");
    expect_tree("s = \"caf\xC3\xA9 \xE6\x97\xA5\"", "{\"s\":\"café 日\"}");
    expect_tree("s = \"\"", "{\"s\":\"\"}");
    expect_tree("s = \"a 'single' # not a comment\"", "{\"s\":\"a 'single' # not a comment\"}");
}
END_TEST

START_TEST(test_literal_and_multiline_strings) {
    expect_tree("p = 'C:\\Users\\nodejs\\templates'",
                "{\"p\":\"C:\\\\Users\\\\nodejs\\\\templates\"}");
    expect_tree("p = '<\\i\\c*\\s*>'", "{\"p\":\"<\\\\i\\\\c*\\\\s*>\"}");
    expect_tree("p = ''", "{\"p\":\"\"}");
    /* the newline right after the opening delimiter is trimmed, later ones kept */
    expect_tree("s = \"\"\"\nRoses are red\nViolets are blue\"\"\"",
                "{\"s\":\"Roses are red\\nViolets are blue\"}");
    expect_tree("s = \"\"\"\r\none\r\ntwo\"\"\"", "{\"s\":\"one\\ntwo\"}");
    /* line-ending backslash trims the newline and following whitespace, with trailing spaces */
    expect_tree(
        "s = \"\"\"\nThe quick brown \\\n\n\n  fox jumps over \\   \t\n    the lazy dog.\"\"\"",
        "{\"s\":\"The quick brown fox jumps over the lazy dog.\"}");
    expect_tree("s = \"\"\"\\\n       The quick brown \\\n       fox.\\\n       \"\"\"",
                "{\"s\":\"The quick brown fox.\"}");
    expect_tree("s = \"\"\"Here are two quotation marks: \"\". Simple enough.\"\"\"",
                "{\"s\":\"Here are two quotation marks: \\\"\\\". Simple enough.\"}");
    expect_tree("s = \"\"\"Here are three quotation marks: \"\"\\\".\"\"\"",
                "{\"s\":\"Here are three quotation marks: \\\"\\\"\\\".\"}");
    expect_tree("s = \"\"\"\"This,\" she said, \"is just a pointless statement.\"\"\"\"",
                "{\"s\":\"\\\"This,\\\" she said, \\\"is just a pointless statement.\\\"\"}");
    expect_tree("s = \"\"\"two at the end\"\"\"\"\"", "{\"s\":\"two at the end\\\"\\\"\"}");
    expect_tree("s = \"\"\"esc \\t \\u00e9 \\\\\"\"\"", "{\"s\":\"esc \\t é \\\\\"}");
    expect_tree("s = \"\"\"\"\"\"", "{\"s\":\"\"}");
    expect_tree("re = '''I [dw]on't need \\d{2} apples'''",
                "{\"re\":\"I [dw]on't need \\\\d{2} apples\"}");
    expect_tree("lines = '''\nThe first newline is\ntrimmed in raw strings.\n   All other "
                "whitespace\n   is preserved.\n'''",
                "{\"lines\":\"The first newline is\\ntrimmed in raw strings.\\n   All other "
                "whitespace\\n   is preserved.\\n\"}");
    expect_tree("q = '''Here are fifteen quotation marks: \"\"\"\"\"\"\"\"\"\"\"\"\"\"\"'''",
                "{\"q\":\"Here are fifteen quotation marks: "
                "\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\"}");
    expect_tree("a = ''''That,' she said, 'is still pointless.''''",
                "{\"a\":\"'That,' she said, 'is still pointless.'\"}");
    expect_tree("a = '''\\ no escapes \\n here'''", "{\"a\":\"\\\\ no escapes \\\\n here\"}");
}
END_TEST

START_TEST(test_integers) {
    expect_tree("a = +99\nb = 42\nc = 0\nd = -17\ne = +0\nf = -0",
                "{\"a\":99,\"b\":42,\"c\":0,\"d\":-17,\"e\":0,\"f\":0}");
    expect_tree("a = 1_000\nb = 5_349_221\nc = 53_49_221\nd = 1_2_3_4_5",
                "{\"a\":1000,\"b\":5349221,\"c\":5349221,\"d\":12345}");
    expect_tree("h1 = 0xDEADBEEF\nh2 = 0xdeadbeef\nh3 = 0xdead_beef\nh4 = 0x00ff",
                "{\"h1\":3735928559,\"h2\":3735928559,\"h3\":3735928559,\"h4\":255}");
    expect_tree("o1 = 0o01234567\no2 = 0o755\no3 = 0o7_7", "{\"o1\":342391,\"o2\":493,\"o3\":63}");
    expect_tree("b1 = 0b11010110\nb2 = 0b1_0\nb3 = 0b0", "{\"b1\":214,\"b2\":2,\"b3\":0}");
    json_t *root = parse_ok("max = 9223372036854775807\nmin = -9223372036854775808\n"
                            "hmax = 0x7FFFFFFFFFFFFFFF\nomax = 0o777777777777777777777\n"
                            "bmax = 0b"
                            "111111111111111111111111111111111111111111111111111111111111111");
    ck_assert(json_integer_value(json_object_get(root, "max")) == LLONG_MAX);
    ck_assert(json_integer_value(json_object_get(root, "min")) == LLONG_MIN);
    ck_assert(json_integer_value(json_object_get(root, "hmax")) == LLONG_MAX);
    ck_assert(json_integer_value(json_object_get(root, "omax")) == LLONG_MAX);
    ck_assert(json_integer_value(json_object_get(root, "bmax")) == LLONG_MAX);
    ck_assert(json_is_integer(json_object_get(root, "max")));
    json_decref(root);
}
END_TEST

START_TEST(test_floats) {
    expect_tree("a = +1.0\nb = 3.1415\nc = -0.01\nd = 5e+22\ne = 1e06\nf = -2E-2\n"
                "g = 6.626e-34\nh = 224_617.445_991_228\ni = 0.0\nj = -0.0\nk = 1e1_0\n"
                "l = 0e0\nm = 9_9.9_9e-1_0",
                "{\"a\":1.0,\"b\":3.1415,\"c\":-0.01,\"d\":5e22,\"e\":1e6,\"f\":-0.02,"
                "\"g\":6.626e-34,\"h\":224617.445991228,\"i\":0.0,\"j\":-0.0,\"k\":1e10,"
                "\"l\":0.0,\"m\":99.99e-10}");
    json_t *root = parse_ok("x = 1.5\ny = 1e2");
    ck_assert(json_is_real(json_object_get(root, "x")));
    ck_assert(json_is_real(json_object_get(root, "y")));
    json_decref(root);
    /* JSON cannot hold inf or nan: they come back as their spelling */
    expect_tree("a = inf\nb = +inf\nc = -inf\nd = nan\ne = +nan\nf = -nan",
                "{\"a\":\"inf\",\"b\":\"+inf\",\"c\":\"-inf\",\"d\":\"nan\",\"e\":\"+nan\","
                "\"f\":\"-nan\"}");
    expect_tree("tiny = 1e-400", "{\"tiny\":0.0}");
}
END_TEST

START_TEST(test_booleans_and_dates) {
    expect_tree("t = true\nf = false", "{\"t\":true,\"f\":false}");
    expect_tree("odt1 = 1979-05-27T07:32:00Z\n"
                "odt2 = 1979-05-27T00:32:00-07:00\n"
                "odt3 = 1979-05-27T00:32:00.999999-07:00\n"
                "odt4 = 1979-05-27 07:32:00Z\n"
                "odt5 = 1979-05-27t07:32:00z\n"
                "ldt1 = 1979-05-27T07:32:00\n"
                "ldt2 = 1979-05-27T00:32:00.999999\n"
                "ld1 = 1979-05-27\n"
                "lt1 = 07:32:00\n"
                "lt2 = 00:32:00.999999\n"
                "leap = 2000-02-29\n"
                "sec60 = 1990-12-31T23:59:60Z\n",
                "{\"odt1\":\"1979-05-27T07:32:00Z\",\"odt2\":\"1979-05-27T00:32:00-07:00\","
                "\"odt3\":\"1979-05-27T00:32:00.999999-07:00\",\"odt4\":\"1979-05-27 07:32:00Z\","
                "\"odt5\":\"1979-05-27t07:32:00z\",\"ldt1\":\"1979-05-27T07:32:00\","
                "\"ldt2\":\"1979-05-27T00:32:00.999999\",\"ld1\":\"1979-05-27\","
                "\"lt1\":\"07:32:00\",\"lt2\":\"00:32:00.999999\",\"leap\":\"2000-02-29\","
                "\"sec60\":\"1990-12-31T23:59:60Z\"}");
    /* a date followed by a space and a comment is only a date */
    expect_tree("d = 1979-05-27 # birthday\n", "{\"d\":\"1979-05-27\"}");
    expect_tree("a = [1979-05-27, 07:32:00]", "{\"a\":[\"1979-05-27\",\"07:32:00\"]}");
}
END_TEST

START_TEST(test_arrays) {
    expect_tree("integers = [ 1, 2, 3 ]\ncolors = [ \"red\", \"yellow\", \"green\" ]\n"
                "nested = [ [ 1, 2 ], [3, 4, 5] ]\nnested_mixed = [ [ 1, 2 ], [\"a\", \"b\"] ]\n"
                "string_array = [ \"all\", 'strings', \"\"\"are the same\"\"\", '''type''' ]",
                "{\"integers\":[1,2,3],\"colors\":[\"red\",\"yellow\",\"green\"],"
                "\"nested\":[[1,2],[3,4,5]],\"nested_mixed\":[[1,2],[\"a\",\"b\"]],"
                "\"string_array\":[\"all\",\"strings\",\"are the same\",\"type\"]}");
    expect_tree("numbers = [ 0.1, 0.2, 0.5, 1, 2, 5 ]\n"
                "contributors = [\n  \"Foo Bar <foo@example.com>\",\n"
                "  { name = \"Baz Qux\", email = \"bazqux@example.com\" }\n]",
                "{\"numbers\":[0.1,0.2,0.5,1,2,5],\"contributors\":[\"Foo Bar <foo@example.com>\","
                "{\"name\":\"Baz Qux\",\"email\":\"bazqux@example.com\"}]}");
    expect_tree("a = [\n  1,\n  2, # two\n  # a comment line\n  3,\n]", "{\"a\":[1,2,3]}");
    expect_tree("a = []\nb = [ ]\nc = [\n]\nd = [[]]\ne = [1,]",
                "{\"a\":[],\"b\":[],\"c\":[],\"d\":[[]],\"e\":[1]}");
    expect_tree("a = [true,false,1,'x',1.5,{},[]]", "{\"a\":[true,false,1,\"x\",1.5,{},[]]}");
}
END_TEST

START_TEST(test_inline_tables) {
    expect_tree("name = { first = \"Tom\", last = \"Preston-Werner\" }\n"
                "point = { x = 1, y = 2 }\nanimal = { type.name = \"pug\" }\nempty = {}",
                "{\"name\":{\"first\":\"Tom\",\"last\":\"Preston-Werner\"},"
                "\"point\":{\"x\":1,\"y\":2},\"animal\":{\"type\":{\"name\":\"pug\"}},"
                "\"empty\":{}}");
    expect_tree("a = {b = {c = {d = 1}}, e.f = [1, {g = 2}]}",
                "{\"a\":{\"b\":{\"c\":{\"d\":1}},\"e\":{\"f\":[1,{\"g\":2}]}}}");
    /* values inside an inline table may span lines; the table itself may not */
    expect_tree("a = { s = \"\"\"x\ny\"\"\", arr = [\n1,\n2] }",
                "{\"a\":{\"s\":\"x\\ny\",\"arr\":[1,2]}}");
    expect_tree("a={x=1,y.z=2,y.w=3}", "{\"a\":{\"x\":1,\"y\":{\"z\":2,\"w\":3}}}");
}
END_TEST

START_TEST(test_tables) {
    expect_tree("[table-1]\nkey1 = \"some string\"\nkey2 = 123\n\n[table-2]\nkey1 = "
                "\"another string\"\nkey2 = 456",
                "{\"table-1\":{\"key1\":\"some string\",\"key2\":123},"
                "\"table-2\":{\"key1\":\"another string\",\"key2\":456}}");
    expect_tree("[dog.\"tater.man\"]\ntype.name = \"pug\"",
                "{\"dog\":{\"tater.man\":{\"type\":{\"name\":\"pug\"}}}}");
    expect_tree("[a.b.c]\n[ d.e.f ]\n[ g .  h  . i ]\n[ j . \"ʞ\" . 'l' ]",
                "{\"a\":{\"b\":{\"c\":{}}},\"d\":{\"e\":{\"f\":{}}},\"g\":{\"h\":{\"i\":{}}},"
                "\"j\":{\"ʞ\":{\"l\":{}}}}");
    /* super-tables may be defined after their sub-tables, once */
    expect_tree("[x.y.z.w]\n[x]\nk = 1", "{\"x\":{\"y\":{\"z\":{\"w\":{}}},\"k\":1}}");
    expect_tree("[fruit]\napple.color = \"red\"\napple.taste.sweet = true\n"
                "[fruit.apple.texture]\nsmooth = true",
                "{\"fruit\":{\"apple\":{\"color\":\"red\",\"taste\":{\"sweet\":true},"
                "\"texture\":{\"smooth\":true}}}}");
    /* a table only implied by a deeper header may still be defined with dotted keys */
    expect_tree("[a.b.c]\n[a]\nb.d = 1", "{\"a\":{\"b\":{\"c\":{},\"d\":1}}}");
    expect_tree("top = 1\n[a]\n[b]\n[a.c]\nz = 2", "{\"top\":1,\"a\":{\"c\":{\"z\":2}},\"b\":{}}");
    expect_tree("[\"\"]\nk = 1", "{\"\":{\"k\":1}}");
}
END_TEST

START_TEST(test_arrays_of_tables) {
    expect_tree("[[products]]\nname = \"Hammer\"\nsku = 738594937\n\n[[products]]  # empty\n\n"
                "[[products]]\nname = \"Nail\"\ncolor = \"gray\"",
                "{\"products\":[{\"name\":\"Hammer\",\"sku\":738594937},{},"
                "{\"name\":\"Nail\",\"color\":\"gray\"}]}");
    expect_tree("[[fruits]]\nname = \"apple\"\n[fruits.physical]\ncolor = \"red\"\n"
                "[[fruits.varieties]]\nname = \"red delicious\"\n[[fruits.varieties]]\n"
                "name = \"granny smith\"\n\n[[fruits]]\nname = \"banana\"\n"
                "[[fruits.varieties]]\nname = \"plantain\"",
                "{\"fruits\":[{\"name\":\"apple\",\"physical\":{\"color\":\"red\"},"
                "\"varieties\":[{\"name\":\"red delicious\"},{\"name\":\"granny smith\"}]},"
                "{\"name\":\"banana\",\"varieties\":[{\"name\":\"plantain\"}]}]}");
    expect_tree("[[a.b]]\nx = 1\n[a]\ny = 2\n[[a.b]]\nx = 3",
                "{\"a\":{\"b\":[{\"x\":1},{\"x\":3}],\"y\":2}}");
    /* each element is a fresh table: the same dotted keys may appear in both */
    expect_tree("[[s]]\nk.v = 1\n[[s]]\nk.v = 2", "{\"s\":[{\"k\":{\"v\":1}},{\"k\":{\"v\":2}}]}");
    expect_tree("points = [ { x = 1, y = 2, z = 3 },\n           { x = 7, y = 8, z = 9 } ]",
                "{\"points\":[{\"x\":1,\"y\":2,\"z\":3},{\"x\":7,\"y\":8,\"z\":9}]}");
}
END_TEST

START_TEST(test_depth_limit) {
    /* 128 nested arrays is the limit; one more is refused without recursing further */
    char doc[600];
    size_t n = 0;
    n += (size_t)sprintf(doc, "a = ");
    for (int i = 0; i < 128; i++)
        doc[n++] = '[';
    for (int i = 0; i < 128; i++)
        doc[n++] = ']';
    doc[n] = '\0';
    json_t *root = parse_ok(doc);
    json_decref(root);

    n = (size_t)sprintf(doc, "a = ");
    for (int i = 0; i < 129; i++)
        doc[n++] = '[';
    doc[n] = '\0';
    expect_err(doc, "t.toml:1:133: nesting deeper than 128");

    /* a huge unclosed nest must not blow the stack either */
    size_t big = 1000000;
    char *deep = malloc(big + 5);
    ck_assert_ptr_nonnull(deep);
    memcpy(deep, "a = ", 4);
    memset(deep + 4, '{', big);
    deep[big + 4] = '\0';
    expect_err(deep, "t.toml:1:");
    memset(deep + 4, '[', big);
    expect_err(deep, "t.toml:1:133: nesting deeper than 128");
    free(deep);

    /* deep dotted keys and headers count too */
    char key[1200];
    n = 0;
    for (int i = 0; i < 200; i++)
        n += (size_t)sprintf(key + n, "k.");
    key[n - 1] = '\0';
    char doc2[1300];
    snprintf(doc2, sizeof(doc2), "%s = 1", key);
    expect_err(doc2, "t.toml:1:257: nesting deeper than 128");
    snprintf(doc2, sizeof(doc2), "[%s]", key);
    expect_err(doc2, "t.toml:1:258: nesting deeper than 128");
    snprintf(doc2, sizeof(doc2), "[[%s]]", key);
    expect_err(doc2, "t.toml:1:259: nesting deeper than 128");
}
END_TEST

/* ---- errors ----------------------------------------------------------------------------- */

START_TEST(test_error_positions) {
    expect_err("a = 1\nb = \"\\q\"", "t.toml:2:6: invalid escape");
    expect_err("a = 1\nb = 2\n  c = 0x_1", "t.toml:3:9: expected a base-16 digit, found '_'");
    expect_err("k = 'x\n", "t.toml:1:7: expected \"'\" to close the string, found newline");
    expect_err("[a]\nx = 1\n[a]", "t.toml:3:2: table \"a\" is defined more than once");
    expect_err("x = 1\nx = 2", "t.toml:2:1: key \"x\" is defined more than once");
    expect_err("é = 1", "t.toml:1:1: expected a key (bare, \"quoted\" or 'literal'), found U+00E9");
    expect_err("s = \"日本\" x", "t.toml:1:10: expected a newline or end of file after a value, "
                                 "found 'x'");
    expect_err("a = 1 2", "t.toml:1:7: expected a newline or end of file after a value");
    expect_err("[t] x = 1", "t.toml:1:5: expected a newline or end of file after a table header");
    expect_err("key", "t.toml:1:4: expected '=' after key, found end of file");
    expect_err("key =", "t.toml:1:6: expected a value");
    expect_err("key = # nothing", "t.toml:1:7: expected a value (string, number, boolean, date, "
                                  "array or inline table), found '#'");
    expect_err("= 1", "t.toml:1:1: expected a key");
    expect_err("a = 1\r\nb = \"\r\n", "t.toml:2:6: expected '\"' to close the string, found "
                                      "carriage return");
    expect_err("[a", "t.toml:1:3: expected ']' to close the table header, found end of file");
    expect_err("[[a]\n", "t.toml:1:5: expected ']]' to close the array-of-tables header, found "
                         "newline");
    expect_err("[]", "t.toml:1:2: expected a key");
    expect_err("a = [1 2]", "t.toml:1:8: expected ',' or ']' in array, found '2'");
    expect_err("a = [1,,2]", "t.toml:1:8: expected a value");
    expect_err("a = [", "t.toml:1:6: expected a value");
    expect_err("x = { a = 1 b = 2 }",
               "t.toml:1:13: expected ',' or '}' in inline table, found 'b'");
}
END_TEST

START_TEST(test_invalid_strings) {
    expect_err("s = \"\\x41\"", "t.toml:1:6: invalid escape: expected one of");
    expect_err("s = \"\\ \"", "t.toml:1:6: invalid escape");
    expect_err("s = \"\\e\"", "t.toml:1:6: invalid escape"); /* TOML 1.1 only */
    expect_err("s = \"\\u12\"", "t.toml:1:10: expected 4 hex digits after '\\u', found '\"'");
    expect_err("s = \"\\U0000004\"", "t.toml:1:15: expected 8 hex digits after '\\U'");
    expect_err("s = \"\\uD800\"", "t.toml:1:6: escape '\\uD800' is not a Unicode scalar value");
    expect_err("s = \"\\uDFFF\"", "t.toml:1:6: escape '\\uDFFF' is not a Unicode scalar value");
    expect_err("s = \"\\U00110000\"", "t.toml:1:6: escape '\\U00110000' is not a Unicode");
    expect_err("s = \"\\u0000\"", "t.toml:1:6: escape for U+0000 is not supported");
    expect_err("s = \"unterminated", "t.toml:1:18: expected '\"' to close the string, found end "
                                     "of file");
    expect_err("s = \"\"\"\nnever closed\n", "t.toml:3:1: expected '\"\"\"' to close the "
                                             "multi-line string");
    expect_err("s = '''\nnever closed''", "t.toml:2:15: expected \"'''\" to close");
    expect_err("s = \"\"\"six\"\"\"\"\"\"", "t.toml:1:16: too many quotes");
    expect_err("s = '''six''''''", "t.toml:1:16: too many quotes");
    expect_err("s = \"\"\"a \\ b\"\"\"", "t.toml:1:10: invalid escape");
    expect_err("s = \"\"\"\"\"\"\"\"\"", "t.toml:1:13: too many quotes");
    expect_err("s = 'a\\'b'", "t.toml:1:9: expected a newline or end of file");
    /* literal strings have no escapes but still refuse control characters */
    expect_err("s = 'a\x01'", "t.toml:1:7: control character U+0001 must be escaped");
    expect_err("\"a\nb\" = 1", "t.toml:1:3: expected '\"' to close the string, found newline");
    expect_err("\"\"\"k\"\"\" = 1", "t.toml:1:3: expected '=' after key, found '\"'");
}
END_TEST

START_TEST(test_control_characters_and_utf8) {
    expect_err("s = \"a\x01\"", "t.toml:1:7: control character U+0001 must be escaped");
    expect_err("s = \"a\x7f\"", "t.toml:1:7: control character U+007F must be escaped");
    expect_err("s = \"\"\"a\x1f\"\"\"", "t.toml:1:9: control character U+001F must be escaped");
    expect_err("s = '''a\rb'''", "t.toml:1:9: control character U+000D must be escaped");
    expect_err("# comment \x7f\n", "t.toml:1:11: control character U+007F is not allowed in a "
                                   "comment");
    expect_err("# comment \r x\n", "t.toml:1:11: control character U+000D is not allowed");
    expect_err("a = 1\r", "t.toml:1:6: expected a newline or end of file after a value, found "
                          "carriage return");
    expect_err_len("a = 1\n\0b = 2", 12, "t.toml:2:1: NUL byte is not allowed");
    expect_err_len("s = \"a\0b\"", 9, "t.toml:1:7: NUL byte is not allowed");
    expect_err("s = \"\xff\"", "t.toml:1:6: invalid UTF-8: unexpected byte 0xFF");
    expect_err("s = \"\xC0\xAF\"",
               "t.toml:1:6: invalid UTF-8: unexpected byte 0xC0"); /* overlong */
    expect_err("s = \"\xE0\x80\xAF\"", "t.toml:1:6: invalid UTF-8: overlong");
    expect_err("s = \"\xED\xA0\x80\"", "t.toml:1:6: invalid UTF-8: overlong form, surrogate");
    expect_err("s = \"\xF4\x90\x80\x80\"", "t.toml:1:6: invalid UTF-8");
    expect_err("s = \"\xE6\x97\"", "t.toml:1:6: invalid UTF-8: truncated sequence");
    expect_err("s = \"\xE6\x97", "t.toml:1:6: invalid UTF-8: truncated sequence");
    expect_err("# \x80\n", "t.toml:1:3: invalid UTF-8: unexpected byte 0x80");
    /* a document cut short by len is read no further than len */
    expect_err_len("s = \"abc\"", 7, "t.toml:1:8: expected '\"' to close the string, found end");
}
END_TEST

START_TEST(test_invalid_numbers) {
    expect_err("a = 0123", "t.toml:1:5: leading zeros are not allowed");
    expect_err("a = -012", "t.toml:1:6: leading zeros are not allowed");
    expect_err("a = 00.5", "t.toml:1:5: leading zeros are not allowed");
    expect_err("a = 1__2", "t.toml:1:6: expected a digit, found '_'");
    expect_err("a = _1", "t.toml:1:5: expected a value");
    expect_err("a = 1_", "t.toml:1:6: expected a digit, found '_'");
    expect_err("a = 1_000_", "t.toml:1:10: expected a digit");
    expect_err("a = 9223372036854775808", "t.toml:1:5: integer does not fit in 64 bits");
    expect_err("a = -9223372036854775809", "t.toml:1:5: integer does not fit in 64 bits");
    expect_err("a = 0x8000000000000000", "t.toml:1:5: integer does not fit in 64 bits");
    expect_err("a = 0xFFFFFFFFFFFFFFFFFF", "t.toml:1:5: integer does not fit in 64 bits");
    expect_err("a = +0x10", "t.toml:1:5: a sign is not allowed on hexadecimal");
    expect_err("a = -0b1", "t.toml:1:5: a sign is not allowed");
    expect_err("a = 0xG", "t.toml:1:7: expected a base-16 digit, found 'G'");
    expect_err("a = 0o8", "t.toml:1:7: expected a base-8 digit, found '8'");
    expect_err("a = 0b2", "t.toml:1:7: expected a base-2 digit, found '2'");
    expect_err("a = 0x", "t.toml:1:7: expected a base-16 digit, found end of file");
    expect_err("a = 0X1F", "t.toml:1:6: unexpected 'X' in number");
    expect_err("a = 1.", "t.toml:1:7: expected a digit after '.'");
    expect_err("a = .5", "t.toml:1:5: expected a value");
    expect_err("a = 1.e5", "t.toml:1:7: expected a digit after '.', found 'e'");
    expect_err("a = 1e", "t.toml:1:7: expected a digit in the exponent");
    expect_err("a = 1e+", "t.toml:1:8: expected a digit in the exponent");
    expect_err("a = 1_.5", "t.toml:1:6: expected a digit");
    expect_err("a = 1._5", "t.toml:1:7: expected a digit after '.', found '_'");
    expect_err("a = 1.5.3", "t.toml:1:8: unexpected '.' in number");
    expect_err("a = 1e400", "t.toml:1:5: float is out of range");
    expect_err("a = -1e400", "t.toml:1:5: float is out of range");
    expect_err("a = infinity", "t.toml:1:5: expected a digit, found 'i'");
    expect_err("a = -infinity", "t.toml:1:6: expected a digit, found 'i'");
    expect_err("a = null", "t.toml:1:5: expected a value (string, number, boolean, date, "
                           "array or inline table), found 'n'");
    expect_err("a = Inf", "t.toml:1:5: expected a value");
    expect_err("a = +", "t.toml:1:6: expected a digit, found end of file");
    expect_err("a = 1,", "t.toml:1:6: expected a newline or end of file after a value");
    expect_err("a = True", "t.toml:1:5: expected a value");
    expect_err("a = truee", "t.toml:1:5: expected a value");
    expect_err("a = tru", "t.toml:1:5: expected a value");
}
END_TEST

START_TEST(test_invalid_dates) {
    expect_err("d = 1979-13-01", "t.toml:1:10: invalid date or time");
    expect_err("d = 1979-02-30", "t.toml:1:13: invalid date or time");
    expect_err("d = 1900-02-29", "t.toml:1:13: invalid date or time"); /* not a leap year */
    expect_err("d = 1979-05-27T25:00:00", "t.toml:1:16: invalid date or time");
    expect_err("d = 1979-05-27T07:60:00", "t.toml:1:19: invalid date or time");
    expect_err("d = 1979-05-27T07:32", "t.toml:1:21: invalid date or time"); /* seconds required */
    expect_err("d = 1979-05-27T07:32:00.", "t.toml:1:25: invalid date or time");
    expect_err("d = 1979-05-27T07:32:00+7:00", "t.toml:1:25: invalid date or time");
    expect_err("d = 1979-5-27", "t.toml:1:10: invalid date or time");
    expect_err("d = 07:32:00Z", "t.toml:1:13: invalid date or time"); /* local time, no offset */
    expect_err("d = 7:32:00", "t.toml:1:6: unexpected ':' in number");
    expect_err("d = 1979-05-27X", "t.toml:1:15: invalid date or time");
}
END_TEST

START_TEST(test_redefinitions) {
    expect_err("a = 1\na = 2", "t.toml:2:1: key \"a\" is defined more than once");
    expect_err("a.b = 1\na.b = 2", "t.toml:2:3: key \"b\" is defined more than once");
    expect_err("a = 1\na.b = 2", "t.toml:2:1: \"a\" is already an integer, expected a table");
    expect_err("\"a\" = 1\n'a' = 2", "t.toml:2:1: key \"a\" is defined more than once");
    expect_err("[a]\n[a]", "t.toml:2:2: table \"a\" is defined more than once");
    expect_err("[a.b]\n[a]\n[a]", "t.toml:3:2: table \"a\" is defined more than once");
    expect_err("[a]\nb = 1\n[a.b]", "t.toml:3:4: \"b\" is already an integer, expected a table");
    expect_err("[a]\nb.c = 1\n[a.b]", "t.toml:3:4: table \"b\" is defined more than once "
                                      "(already defined by dotted keys)");
    expect_err("a.b = 1\n[a]", "t.toml:2:2: table \"a\" is defined more than once");
    expect_err("[a.b.c]\n[a]\nb.c.t = 1", "t.toml:3:3: cannot add to table \"c\" with dotted "
                                          "keys: it is defined by a [header]");
    expect_err("[a.b]\n[a]\nb.t = 1", "t.toml:3:1: cannot add to table \"b\" with dotted keys");
    expect_err("[a.b.c]\n[a]\nb.d = 1\n[a.b]", "t.toml:4:4: table \"b\" is defined more than "
                                               "once (already defined by dotted keys)");
    expect_err("[a.b]\nc = 1\n[a]\nb = 2", "t.toml:4:1: key \"b\" is defined more than once");
    expect_err("[a]\nb = 1\n[a]\nc = 2", "t.toml:3:2: table \"a\" is defined more than once");
    /* inline tables are sealed */
    expect_err("a = {b = 1}\na.c = 2", "t.toml:2:1: cannot extend \"a\": inline tables are "
                                       "complete");
    expect_err("a = {b = 1}\n[a]", "t.toml:2:2: table \"a\" is defined more than once");
    expect_err("a = {b = 1}\n[a.c]", "t.toml:2:2: cannot extend \"a\": inline tables");
    expect_err("a = {b = {c = 1}}\n[a.b.d]", "t.toml:2:2: cannot extend \"a\"");
    expect_err("a = {b = {c = 1}, b.d = 2}", "t.toml:1:19: cannot extend \"b\": inline tables");
    expect_err("a = {b = 1, b = 2}", "t.toml:1:13: key \"b\" is defined more than once");
    expect_err("a = {b.c = 1, b = 2}", "t.toml:1:15: key \"b\" is defined more than once");
    /* static arrays cannot be appended to, nor arrays of tables redefined */
    expect_err("a = []\n[[a]]", "t.toml:2:3: cannot append to static array \"a\" with [[...]]");
    expect_err("a = [{b = 1}]\n[a.c]", "t.toml:2:2: cannot extend \"a\": it is a static array");
    expect_err("[[a]]\n[a]", "t.toml:2:2: \"a\" is an array of tables; use [[...]]");
    expect_err("[a]\n[[a]]", "t.toml:2:3: \"a\" is already a table, expected an array of "
                             "tables");
    expect_err("[[a]]\nb = 1\n[a.b]", "t.toml:3:4: \"b\" is already an integer");
    expect_err("[[a]]\n[a]\nb = 1", "t.toml:2:2: \"a\" is an array of tables");
    expect_err("[x]\n[[x.a]]\n[x]", "t.toml:3:2: table \"x\" is defined more than once");
    expect_err("[[x.a]]\n[x]\na.b = 1", "t.toml:3:1: \"a\" is already an array");
}
END_TEST

START_TEST(test_inline_table_syntax) {
    expect_err("a = {b = 1,}", "t.toml:1:12: expected a key after ',': trailing commas");
    expect_err("a = {b = 1, }", "t.toml:1:13: expected a key after ','");
    expect_err("a = {\nb = 1}", "t.toml:1:6: expected a key (bare, \"quoted\" or 'literal'), "
                                "found newline");
    expect_err("a = {b = 1\n}", "t.toml:1:11: expected ',' or '}' in inline table, found newline "
                                "(inline tables must be on one line)");
    expect_err("a = {b = 1", "t.toml:1:11: expected ',' or '}' in inline table, found end of "
                             "file");
    expect_err("a = {,}", "t.toml:1:6: expected a key");
    expect_err("a = {b}", "t.toml:1:7: expected '=' after key, found '}'");
}
END_TEST

/* ---- file API --------------------------------------------------------------------------- */

START_TEST(test_file_api) {
    json_t *root = (json_t *)0x1;
    int rc = baic_config_parse_file("/nonexistent/baic/manager.toml", &root, err, sizeof(err));
    ck_assert_int_eq(rc, -ENOENT);
    ck_assert_ptr_null(root);
    ck_assert_str_eq(err, "/nonexistent/baic/manager.toml: No such file or directory");

    rc = baic_config_parse_file(BAIC_SOURCE_DIR "/tests/fixtures/config", &root, err, sizeof(err));
    ck_assert_int_eq(rc, -EISDIR);
    ck_assert_str_eq(err, BAIC_SOURCE_DIR "/tests/fixtures/config: Is a directory");

    /* syntax errors in a file are reported against its path */
    rc = baic_config_parse_file(FIXTURE("bad.toml"), &root, err, sizeof(err));
    ck_assert_int_eq(rc, BAIC_ECONFIG_SYNTAX);
    ck_assert_str_eq(err, FIXTURE("bad.toml") ":4:2: table \"db\" is defined more than once");

    /* a tiny err buffer is truncated, not overrun; a NULL one is fine */
    char small[8];
    rc = baic_config_parse_file(FIXTURE("bad.toml"), &root, small, sizeof(small));
    ck_assert_int_eq(rc, BAIC_ECONFIG_SYNTAX);
    ck_assert_int_eq(strlen(small), 7);
    rc = baic_config_parse_file(FIXTURE("bad.toml"), &root, NULL, 0);
    ck_assert_int_eq(rc, BAIC_ECONFIG_SYNTAX);

    /* something that is not a regular file with a size */
    rc = baic_config_parse_file("/dev/null", &root, err, sizeof(err));
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(json_object_size(root), 0);
    json_decref(root);
}
END_TEST

START_TEST(test_string_api_edges) {
    json_t *root = (json_t *)0x1;
    /* NULL text with length 0 is an empty document */
    ck_assert_int_eq(baic_config_parse_string(NULL, 0, "<string>", &root, err, sizeof(err)), 0);
    ck_assert_int_eq(json_object_size(root), 0);
    json_decref(root);
    /* text need not be NUL-terminated: only len bytes are read */
    char buf[5] = {'a', '=', '1', '2', '3'};
    ck_assert_int_eq(baic_config_parse_string(buf, 3, "<string>", &root, err, sizeof(err)), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(root, "a")), 1);
    json_decref(root);
    ck_assert_int_eq(baic_config_parse_string("a = ?", 5, "<string>", &root, err, sizeof(err)),
                     BAIC_ECONFIG_SYNTAX);
    ck_assert_str_eq(err, "<string>:1:5: expected a value (string, number, boolean, date, array "
                          "or inline table), found '?'");
}
END_TEST

/* ---- lookups ---------------------------------------------------------------------------- */

START_TEST(test_get_paths) {
    json_t *root = parse_ok("top = 1\n[manager.db]\ndsn = \"pg://x\"\n"
                            "[plugin.\"compute/mock\"]\ndevices = 2\n"
                            "[plugin.\"a.b\"]\n\"q\\\"uote\" = 3\n'back\\slash' = 4\n"
                            "[[list]]\nx = 1");
    ck_assert_ptr_eq(baic_config_get(root, ""), root);
    ck_assert_int_eq(json_integer_value(baic_config_get(root, "top")), 1);
    ck_assert_str_eq(json_string_value(baic_config_get(root, "manager.db.dsn")), "pg://x");
    ck_assert_int_eq(json_integer_value(baic_config_get(root, "plugin.\"compute/mock\".devices")),
                     2);
    ck_assert_int_eq(json_integer_value(baic_config_get(root, "\"plugin\".\"a.b\".\"q\\\"uote\"")),
                     3);
    ck_assert_int_eq(json_integer_value(baic_config_get(root, "plugin.\"a.b\".\"back\\\\slash\"")),
                     4);
    ck_assert(json_is_object(baic_config_get(root, "manager.db")));
    ck_assert(json_is_array(baic_config_get(root, "list")));
    /* missing, through a non-table, or malformed */
    ck_assert_ptr_null(baic_config_get(root, "manager.db.nope"));
    ck_assert_ptr_null(baic_config_get(root, "top.x"));
    ck_assert_ptr_null(baic_config_get(root, "list.x"));
    ck_assert_ptr_null(baic_config_get(root, "manager..db"));
    ck_assert_ptr_null(baic_config_get(root, "manager.db."));
    ck_assert_ptr_null(baic_config_get(root, ".manager"));
    ck_assert_ptr_null(baic_config_get(root, "plugin.\"compute/mock"));
    ck_assert_ptr_null(baic_config_get(root, "plugin.\"compute/mock\"x"));
    ck_assert_ptr_null(baic_config_get(root, "plugin.\"a\\x\""));
    ck_assert_ptr_null(baic_config_get(NULL, "top"));
    ck_assert_ptr_null(baic_config_get(root, NULL));
    /* a segment longer than any stack buffer */
    char longkey[1000];
    memset(longkey, 'k', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = '\0';
    ck_assert_ptr_null(baic_config_get(root, longkey));
    json_decref(root);
}
END_TEST

START_TEST(test_typed_getters) {
    json_t *root = parse_ok("[manager]\nnum-proc = 4\nname = \"m1\"\nssl = true\nratio = 0.5\n"
                            "when = 1979-05-27\n");
    const char *s = NULL;
    long long n = 0;
    int b = -1;

    ck_assert_int_eq(baic_config_get_string(root, "manager.name", "def", &s, err, sizeof(err)), 0);
    ck_assert_str_eq(s, "m1");
    ck_assert_int_eq(baic_config_get_string(root, "manager.absent", "def", &s, err, sizeof(err)),
                     0);
    ck_assert_str_eq(s, "def");
    ck_assert_int_eq(baic_config_get_string(root, "manager.when", NULL, &s, err, sizeof(err)), 0);
    ck_assert_str_eq(s, "1979-05-27");
    s = "untouched";
    ck_assert_int_eq(baic_config_get_string(root, "manager.num-proc", "def", &s, err, sizeof(err)),
                     BAIC_ECONFIG_TYPE);
    ck_assert_str_eq(err, "manager.num-proc: expected string, found integer");
    ck_assert_str_eq(s, "untouched");

    ck_assert_int_eq(baic_config_get_int(root, "manager.num-proc", 1, &n, err, sizeof(err)), 0);
    ck_assert_int_eq(n, 4);
    ck_assert_int_eq(baic_config_get_int(root, "manager.workers", 7, &n, err, sizeof(err)), 0);
    ck_assert_int_eq(n, 7);
    ck_assert_int_eq(baic_config_get_int(root, "manager.ratio", 1, &n, err, sizeof(err)),
                     BAIC_ECONFIG_TYPE);
    ck_assert_str_eq(err, "manager.ratio: expected integer, found float");
    ck_assert_int_eq(baic_config_get_int(root, "manager", 1, &n, err, sizeof(err)),
                     BAIC_ECONFIG_TYPE);
    ck_assert_str_eq(err, "manager: expected integer, found table");

    ck_assert_int_eq(baic_config_get_bool(root, "manager.ssl", 0, &b, err, sizeof(err)), 0);
    ck_assert_int_eq(b, 1);
    ck_assert_int_eq(baic_config_get_bool(root, "manager.debug", 0, &b, err, sizeof(err)), 0);
    ck_assert_int_eq(b, 0);
    ck_assert_int_eq(baic_config_get_bool(root, "manager.name", 0, &b, err, sizeof(err)),
                     BAIC_ECONFIG_TYPE);
    ck_assert_str_eq(err, "manager.name: expected boolean, found string");
    ck_assert_int_eq(baic_config_get_bool(root, "manager.num-proc", 0, &b, NULL, 0),
                     BAIC_ECONFIG_TYPE);

    /* a NULL root yields every default */
    ck_assert_int_eq(baic_config_get_int(NULL, "a.b", 42, &n, err, sizeof(err)), 0);
    ck_assert_int_eq(n, 42);
    json_decref(root);
}
END_TEST

static Suite *config_suite(void) {
    Suite *s = suite_create("config");
    BAIC_TCASE(s, tc_docs, "documents", 30);
    tcase_add_test(tc_docs, test_manager_toml);
    tcase_add_test(tc_docs, test_comments_and_blank_lines);
    tcase_add_test(tc_docs, test_keys);
    tcase_add_test(tc_docs, test_basic_string_escapes);
    tcase_add_test(tc_docs, test_literal_and_multiline_strings);
    tcase_add_test(tc_docs, test_integers);
    tcase_add_test(tc_docs, test_floats);
    tcase_add_test(tc_docs, test_booleans_and_dates);
    tcase_add_test(tc_docs, test_arrays);
    tcase_add_test(tc_docs, test_inline_tables);
    tcase_add_test(tc_docs, test_tables);
    tcase_add_test(tc_docs, test_arrays_of_tables);
    tcase_add_test(tc_docs, test_depth_limit);

    BAIC_TCASE(s, tc_err, "errors", 30);
    tcase_add_test(tc_err, test_error_positions);
    tcase_add_test(tc_err, test_invalid_strings);
    tcase_add_test(tc_err, test_control_characters_and_utf8);
    tcase_add_test(tc_err, test_invalid_numbers);
    tcase_add_test(tc_err, test_invalid_dates);
    tcase_add_test(tc_err, test_redefinitions);
    tcase_add_test(tc_err, test_inline_table_syntax);

    BAIC_TCASE(s, tc_api, "api", 30);
    tcase_add_test(tc_api, test_file_api);
    tcase_add_test(tc_api, test_string_api_edges);
    tcase_add_test(tc_api, test_get_paths);
    tcase_add_test(tc_api, test_typed_getters);
    return s;
}

BAIC_CHECK_MAIN(config_suite)
