/*
 * test_opts: the option table. Flags in both spellings, environment twins,
 * precedence flag > env > default, typed values with bounds, and error texts
 * that name the flag or variable and the bad value. The environment is set
 * and cleared here (prefix WTEST, which nothing else uses).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "opts.h"

static const struct opt defs[] = {
    {"port", OPT_INT, 1, 65535, "8080", "PORT", "port to listen on"},
    {"domain", OPT_STRING, 0, 0, NULL, "NAME", "public domain"},
    {"grace-period", OPT_INT, 0, 3600, "30", "SECS", "name grace period"},
    {"offset", OPT_INT, -10, 10, NULL, "N", "signed value"},
    {"verbose", OPT_BOOL, 0, 0, NULL, NULL, "more output"},
    {"tls", OPT_BOOL, 0, 0, "true", NULL, "use TLS"},
    {"listen", OPT_LIST, 0, 0, "*:80,*:81", "ADDR", "listen address"},
    {"peer", OPT_LIST, 0, 0, NULL, "HOST", "peer"},
    {"secret", OPT_STRING, 0, 0, NULL, "S", "fleet secret", .no_flag = true},
    {"config-dir", OPT_STRING, 0, 0, "/etc/w", "DIR", "config directory", .no_env = true},
};
#define NDEFS (sizeof defs / sizeof defs[0])

static const char *env_vars[] = {
    "WTEST_PORT", "WTEST_DOMAIN", "WTEST_GRACE_PERIOD", "WTEST_OFFSET", "WTEST_VERBOSE",
    "WTEST_TLS",  "WTEST_LISTEN", "WTEST_PEER",         "WTEST_SECRET", "WTEST_CONFIG_DIR"};

static struct opts o;
static char err[256];

static void env_clear(void)
{
    for (size_t i = 0; i < sizeof env_vars / sizeof env_vars[0]; i++)
        unsetenv(env_vars[i]);
}

/* Parse a NULL-terminated argument list (argv[0] included). The previous
 * result is freed first. */
static int parse_argv(char **argv)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    opts_free(&o);
    err[0] = 0;
    return opts_parse(&o, defs, NDEFS, "WTEST", argc, argv, err, sizeof err);
}

#define PARSE(...) parse_argv((char *[]){"prog", __VA_ARGS__, NULL})
#define PARSE0() parse_argv((char *[]){"prog", NULL})

static const struct opt_value *get(const char *name)
{
    return opts_get(&o, name);
}

static int err_has(const char *needle)
{
    if (strstr(err, needle))
        return 1;
    fprintf(stderr, "  error text \"%s\" lacks \"%s\"\n", err, needle);
    return 0;
}

static void test_defaults(void)
{
    env_clear();
    CHECK_EQ(PARSE0(), 0);
    CHECK_EQ(get("port")->num, 8080);
    CHECK_STR(get("port")->str, "8080");
    CHECK_STR(get("port")->src, "default");
    CHECK(!get("port")->set);
    CHECK(get("domain")->str == NULL);
    CHECK(!get("domain")->set);
    CHECK_EQ(get("grace-period")->num, 30);
    CHECK(get("offset")->str == NULL);
    CHECK_EQ(get("verbose")->num, 0);
    CHECK_EQ(get("tls")->num, 1);
    CHECK_EQ(get("listen")->nlist, 2);
    CHECK_STR(get("listen")->list[0], "*:80");
    CHECK_STR(get("listen")->list[1], "*:81");
    CHECK_EQ(get("peer")->nlist, 0);
    CHECK(get("secret")->str == NULL);
    CHECK_STR(get("config-dir")->str, "/etc/w");
}

static void test_flags(void)
{
    env_clear();
    CHECK_EQ(PARSE("--port", "80", "--domain=example.com", "--grace-period=0", "--offset", "-10"),
             0);
    CHECK_EQ(get("port")->num, 80);
    CHECK_STR(get("port")->str, "80");
    CHECK_STR(get("port")->src, "flag");
    CHECK(get("port")->set);
    CHECK_STR(get("domain")->str, "example.com");
    CHECK(get("domain")->set);
    CHECK_EQ(get("grace-period")->num, 0);
    CHECK(get("grace-period")->set);
    CHECK_EQ(get("offset")->num, -10);

    /* the value after --x is taken as is, even when it starts with dashes */
    CHECK_EQ(PARSE("--domain", "--weird"), 0);
    CHECK_STR(get("domain")->str, "--weird");
    /* --x=v keeps everything after the first '=' */
    CHECK_EQ(PARSE("--domain=a=b"), 0);
    CHECK_STR(get("domain")->str, "a=b");
    /* an empty string is a value for a string option */
    CHECK_EQ(PARSE("--domain="), 0);
    CHECK_STR(get("domain")->str, "");
    CHECK(get("domain")->set);
    /* the last one wins */
    CHECK_EQ(PARSE("--port=1", "--port", "2"), 0);
    CHECK_EQ(get("port")->num, 2);
    CHECK_EQ(PARSE("--port=65535", "--offset=10"), 0);
    CHECK_EQ(get("port")->num, 65535);
    CHECK_EQ(get("offset")->num, 10);
    /* leading zeros are still decimal */
    CHECK_EQ(PARSE("--port=0080"), 0);
    CHECK_EQ(get("port")->num, 80);
}

static void test_env(void)
{
    env_clear();
    setenv("WTEST_PORT", "9000", 1);
    setenv("WTEST_GRACE_PERIOD", "45", 1);
    setenv("WTEST_DOMAIN", "env.example", 1);
    CHECK_EQ(PARSE0(), 0);
    CHECK_EQ(get("port")->num, 9000);
    CHECK_STR(get("port")->src, "env");
    CHECK(get("port")->set);
    CHECK_EQ(get("grace-period")->num, 45);
    CHECK_STR(get("grace-period")->src, "env");
    CHECK_STR(get("domain")->str, "env.example");

    /* flags beat the environment, which beats the default */
    CHECK_EQ(PARSE("--port", "81"), 0);
    CHECK_EQ(get("port")->num, 81);
    CHECK_STR(get("port")->src, "flag");
    CHECK_EQ(get("grace-period")->num, 45);
    CHECK_STR(get("domain")->str, "env.example");
    CHECK_EQ(PARSE("--grace-period=1", "--domain", "flag.example"), 0);
    CHECK_EQ(get("grace-period")->num, 1);
    CHECK_STR(get("domain")->str, "flag.example");
    CHECK_EQ(get("port")->num, 9000);

    /* the variable name is the prefix, '_', the name upper-cased with '-' -> '_' */
    env_clear();
    setenv("WTEST_GRACE-PERIOD", "7", 1);
    setenv("WTEST_port", "7", 1);
    setenv("GRACE_PERIOD", "7", 1);
    CHECK_EQ(PARSE0(), 0);
    CHECK_EQ(get("grace-period")->num, 30);
    CHECK_EQ(get("port")->num, 8080);
    unsetenv("WTEST_GRACE-PERIOD");
    unsetenv("WTEST_port");
    unsetenv("GRACE_PERIOD");

    /* an empty variable is a value too (for strings) */
    setenv("WTEST_DOMAIN", "", 1);
    CHECK_EQ(PARSE0(), 0);
    CHECK_STR(get("domain")->str, "");
    CHECK_STR(get("domain")->src, "env");
    env_clear();
}

static void test_int_errors(void)
{
    env_clear();
    static const struct {
        const char *arg, *shown;
    } bad[] = {
        {"--port=0", "\"0\""},
        {"--port=65536", "\"65536\""},
        {"--port=-1", "\"-1\""},
        {"--port=x", "\"x\""},
        {"--port=8o", "\"8o\""},
        {"--port=", "\"\""},
        {"--port=+80", "\"+80\""},
        {"--port= 80", "\" 80\""},
        {"--port=80 ", "\"80 \""},
        {"--port=0x50", "\"0x50\""},
        {"--port=1e3", "\"1e3\""},
        {"--port=-", "\"-\""},
        {"--port=99999999999999999999", "\"99999999999999999999\""},
        {"--port=9999999999999999999", "\"9999999999999999999\""},
        {"--port=9223372036854775808", "\"9223372036854775808\""},
        {"--port=-9223372036854775808", "\"-9223372036854775808\""},
        {"--offset=-11", "\"-11\""},
        {"--offset=11", "\"11\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int r = PARSE((char *)bad[i].arg);
        if (r != -EINVAL)
            fprintf(stderr, "  %s -> %d\n", bad[i].arg, r);
        CHECK_EQ(r, -EINVAL);
        char flag[32];
        snprintf(flag, sizeof flag, "%.*s", (int)(strchr(bad[i].arg, '=') - bad[i].arg),
                 bad[i].arg);
        CHECK(err_has(flag));
        CHECK(err_has(bad[i].shown));
    }
    CHECK_EQ(PARSE("--port", "x"), -EINVAL);
    CHECK_STR(err, "--port: expected an integer 1..65535, got \"x\"");
    CHECK_EQ(PARSE("--offset", "-11"), -EINVAL);
    CHECK(err_has("-10..10"));

    /* the same from the environment names the variable */
    setenv("WTEST_PORT", "http", 1);
    CHECK_EQ(PARSE0(), -EINVAL);
    CHECK(err_has("WTEST_PORT"));
    CHECK(err_has("\"http\""));
    CHECK(err_has("1..65535"));
    /* even when a flag would override it: a bad variable is never silently ignored */
    CHECK_EQ(PARSE("--port", "80"), -EINVAL);
    CHECK(err_has("WTEST_PORT"));
    setenv("WTEST_PORT", "", 1);
    CHECK_EQ(PARSE0(), -EINVAL);
    CHECK(err_has("WTEST_PORT"));
    env_clear();

    /* a long bad value is shown shortened, and the message stays one line */
    char longv[300];
    memset(longv, '9', sizeof longv - 1);
    memcpy(longv, "--port=", 7);
    longv[sizeof longv - 1] = 0;
    CHECK_EQ(PARSE(longv), -EINVAL);
    CHECK(err_has("--port"));
    CHECK(strlen(err) < 120);
    CHECK(strchr(err, '\n') == NULL);
}

static void test_flag_errors(void)
{
    env_clear();
    CHECK_EQ(PARSE("--prot", "80"), -EINVAL);
    CHECK(err_has("unknown flag --prot"));
    CHECK_EQ(PARSE("--prot=80"), -EINVAL);
    CHECK(err_has("unknown flag --prot"));
    CHECK(strstr(err, "80") == NULL);
    CHECK_EQ(PARSE("--po"), -EINVAL); /* no prefix matching */
    CHECK(err_has("unknown flag --po"));
    CHECK_EQ(PARSE("--portx=1"), -EINVAL);
    CHECK(err_has("unknown flag --portx"));
    CHECK_EQ(PARSE("--PORT=1"), -EINVAL);
    CHECK_EQ(PARSE("--grace_period=1"), -EINVAL);
    CHECK(err_has("--grace_period"));
    CHECK_EQ(PARSE("-p", "80"), -EINVAL);
    CHECK(err_has("\"-p\""));
    CHECK_EQ(PARSE("80"), -EINVAL);
    CHECK(err_has("\"80\""));
    CHECK_EQ(PARSE("--"), -EINVAL);
    CHECK_EQ(PARSE("--port", "80", "extra"), -EINVAL);
    CHECK(err_has("\"extra\""));

    /* missing value */
    CHECK_EQ(PARSE("--port"), -EINVAL);
    CHECK(err_has("--port"));
    CHECK(err_has("missing value"));
    CHECK(err_has("PORT"));
    CHECK_EQ(PARSE("--verbose", "--domain"), -EINVAL);
    CHECK(err_has("--domain: missing value"));
    CHECK_EQ(PARSE("--listen"), -EINVAL);
    CHECK(err_has("--listen"));
}

static void test_bools(void)
{
    env_clear();
    CHECK_EQ(PARSE("--verbose"), 0);
    CHECK_EQ(get("verbose")->num, 1);
    CHECK(get("verbose")->set);
    CHECK_STR(get("verbose")->src, "flag");
    static const struct {
        const char *arg;
        long want;
    } ok[] = {
        {"--verbose=true", 1}, {"--verbose=yes", 1}, {"--verbose=1", 1}, {"--verbose=on", 1},
        {"--verbose=TRUE", 1}, {"--verbose=no", 0},  {"--verbose=0", 0}, {"--verbose=false", 0},
        {"--verbose=off", 0},  {"--tls=0", 0},       {"--tls=No", 0},    {"--tls", 1},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int r = PARSE((char *)ok[i].arg);
        CHECK_EQ(r, 0);
        const char *name = ok[i].arg[2] == 'v' ? "verbose" : "tls";
        if (r == 0 && get(name)->num != ok[i].want)
            fprintf(stderr, "  %s -> %ld\n", ok[i].arg, get(name)->num);
        CHECK_EQ(get(name)->num, ok[i].want);
    }
    /* a bool flag takes no separate value */
    CHECK_EQ(PARSE("--verbose", "false"), -EINVAL);
    CHECK(err_has("\"false\""));
    CHECK_EQ(PARSE("--verbose=maybe"), -EINVAL);
    CHECK(err_has("--verbose"));
    CHECK(err_has("\"maybe\""));
    CHECK_EQ(PARSE("--verbose="), -EINVAL);
    CHECK(err_has("--verbose"));
    CHECK_EQ(PARSE("--verbose=2"), -EINVAL);

    /* environment bools */
    setenv("WTEST_VERBOSE", "yes", 1);
    setenv("WTEST_TLS", "0", 1);
    CHECK_EQ(PARSE0(), 0);
    CHECK_EQ(get("verbose")->num, 1);
    CHECK_STR(get("verbose")->src, "env");
    CHECK_EQ(get("tls")->num, 0);
    CHECK(get("tls")->set);
    CHECK_EQ(PARSE("--tls"), 0); /* flag beats env */
    CHECK_EQ(get("tls")->num, 1);
    setenv("WTEST_VERBOSE", "False", 1);
    CHECK_EQ(PARSE0(), 0);
    CHECK_EQ(get("verbose")->num, 0);
    setenv("WTEST_VERBOSE", "2", 1);
    CHECK_EQ(PARSE0(), -EINVAL);
    CHECK(err_has("WTEST_VERBOSE"));
    CHECK(err_has("\"2\""));
    setenv("WTEST_VERBOSE", "", 1);
    CHECK_EQ(PARSE0(), -EINVAL);
    CHECK(err_has("WTEST_VERBOSE"));
    env_clear();
}

static void test_lists(void)
{
    env_clear();
    /* repeated flags replace the default list */
    CHECK_EQ(PARSE("--listen", "127.0.0.1:80", "--listen=[::1]:80", "--peer", "a"), 0);
    const struct opt_value *v = get("listen");
    CHECK_EQ(v->nlist, 2);
    CHECK_STR(v->list[0], "127.0.0.1:80");
    CHECK_STR(v->list[1], "[::1]:80");
    CHECK_STR(v->src, "flag");
    CHECK(v->set);
    CHECK_EQ(get("peer")->nlist, 1);
    CHECK_STR(get("peer")->list[0], "a");
    /* a comma in a flag value is part of the value */
    CHECK_EQ(PARSE("--peer", "a,b"), 0);
    CHECK_EQ(get("peer")->nlist, 1);
    CHECK_STR(get("peer")->list[0], "a,b");

    /* comma-separated in the environment; empty items are skipped */
    setenv("WTEST_LISTEN", "x:1,y:2,,z:3,", 1);
    setenv("WTEST_PEER", "p1", 1);
    CHECK_EQ(PARSE0(), 0);
    v = get("listen");
    CHECK_EQ(v->nlist, 3);
    CHECK_STR(v->list[0], "x:1");
    CHECK_STR(v->list[1], "y:2");
    CHECK_STR(v->list[2], "z:3");
    CHECK_STR(v->src, "env");
    CHECK(v->set);
    CHECK_EQ(get("peer")->nlist, 1);
    CHECK_STR(get("peer")->list[0], "p1");
    /* flags replace the environment's list */
    CHECK_EQ(PARSE("--listen", "f:1", "--listen", "f:2"), 0);
    v = get("listen");
    CHECK_EQ(v->nlist, 2);
    CHECK_STR(v->list[0], "f:1");
    CHECK_STR(v->list[1], "f:2");
    CHECK_EQ(get("peer")->nlist, 1);
    /* the variable is not modified by the split */
    CHECK_STR(getenv("WTEST_LISTEN"), "x:1,y:2,,z:3,");
    env_clear();

    /* at most OPTS_MAX_LIST values */
    char *argv[2 + 2 * (OPTS_MAX_LIST + 1)];
    int a = 0;
    argv[a++] = "prog";
    for (int i = 0; i < OPTS_MAX_LIST; i++) {
        argv[a++] = "--peer";
        argv[a++] = "p";
    }
    argv[a] = NULL;
    CHECK_EQ(parse_argv(argv), 0);
    CHECK_EQ(get("peer")->nlist, OPTS_MAX_LIST);
    argv[a++] = "--peer";
    argv[a++] = "p";
    argv[a] = NULL;
    CHECK_EQ(parse_argv(argv), -EINVAL);
    CHECK(err_has("--peer"));
    char many[2 * (OPTS_MAX_LIST + 1) + 1];
    for (int i = 0; i <= OPTS_MAX_LIST; i++)
        memcpy(many + 2 * i, "p,", 2);
    many[2 * (OPTS_MAX_LIST + 1)] = 0;
    setenv("WTEST_PEER", many, 1);
    CHECK_EQ(PARSE0(), -EINVAL);
    CHECK(err_has("WTEST_PEER"));
    env_clear();
}

static void test_help(void)
{
    env_clear();
    CHECK_EQ(PARSE("--help"), 1);
    CHECK_EQ(PARSE("-h"), 1);
    CHECK_EQ(PARSE("--port", "80", "--help"), 1);
    /* --help wins over anything else wrong on the line or in the environment */
    CHECK_EQ(PARSE("--port", "x", "--help"), 1);
    CHECK_EQ(PARSE("--nosuch", "--help"), 1);
    setenv("WTEST_PORT", "nonsense", 1);
    CHECK_EQ(PARSE("--help"), 1);
    env_clear();
    /* but not when it is the value of another flag */
    CHECK_EQ(PARSE("--domain", "--help"), 0);
    CHECK_STR(get("domain")->str, "--help");

    /* the help lists each flag with its env twin and default */
    CHECK_EQ(PARSE("--help"), 1);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CHECK(f != NULL);
    if (!f)
        return;
    opts_help(&o, f, "usage: prog [options]");
    fclose(f);
    CHECK(strncmp(text, "usage: prog [options]\n", 22) == 0);
    CHECK(strstr(text, "--port PORT") != NULL);
    CHECK(strstr(text, "port to listen on") != NULL);
    CHECK(strstr(text, "env WTEST_PORT, default 8080") != NULL);
    CHECK(strstr(text, "env WTEST_GRACE_PERIOD, default 30") != NULL);
    CHECK(strstr(text, "--verbose ") != NULL);
    CHECK(strstr(text, "--verbose VALUE") == NULL);
    CHECK(strstr(text, "(env only)") != NULL);
    CHECK(strstr(text, "--secret") == NULL);
    CHECK(strstr(text, "WTEST_SECRET") != NULL);
    CHECK(strstr(text, "--config-dir DIR") != NULL);
    CHECK(strstr(text, "WTEST_CONFIG_DIR") == NULL);
    CHECK(strstr(text, "default /etc/w") != NULL);
    free(text);
}

static void test_no_flag_no_env(void)
{
    env_clear();
    /* no_flag: only from the environment */
    CHECK_EQ(PARSE("--secret", "s3cr3t"), -EINVAL);
    CHECK(err_has("unknown flag --secret"));
    CHECK(strstr(err, "s3cr3t") == NULL);
    CHECK_EQ(PARSE("--secret=s3cr3t"), -EINVAL);
    CHECK(err_has("unknown flag --secret"));
    CHECK(strstr(err, "s3cr3t") == NULL);
    setenv("WTEST_SECRET", "from-env", 1);
    CHECK_EQ(PARSE0(), 0);
    CHECK_STR(get("secret")->str, "from-env");
    CHECK_STR(get("secret")->src, "env");

    /* no_env: the variable is ignored, the flag works */
    setenv("WTEST_CONFIG_DIR", "/from/env", 1);
    CHECK_EQ(PARSE0(), 0);
    CHECK_STR(get("config-dir")->str, "/etc/w");
    CHECK_STR(get("config-dir")->src, "default");
    CHECK_EQ(PARSE("--config-dir", "/from/flag"), 0);
    CHECK_STR(get("config-dir")->str, "/from/flag");
    env_clear();
}

static void test_free(void)
{
    /* freeing twice, and after a failed parse, is fine */
    env_clear();
    setenv("WTEST_LISTEN", "a,b", 1);
    CHECK_EQ(PARSE("--port=x"), -EINVAL);
    opts_free(&o);
    opts_free(&o);
    CHECK(o.vals == NULL);
    env_clear();
}

int main(void)
{
    memset(&o, 0, sizeof o);
    test_defaults();
    test_flags();
    test_env();
    test_int_errors();
    test_flag_errors();
    test_bools();
    test_lists();
    test_help();
    test_no_flag_no_env();
    test_free();
    opts_free(&o);
    return check_done();
}
