/*
 * opts: table-driven flags + environment twins. Every value is checked
 * against its type and bounds here, so callers only validate relations
 * between options.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "opts.h"

static void env_name(const struct opts *o, const struct opt *d, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "%s_", o->env_prefix);
    for (const char *p = d->name; *p && n + 1 < cap; p++)
        out[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    out[n] = 0;
}

static int parse_long(const char *s, long min, long max, long *out)
{
    if (!*s || strlen(s) > 19)
        return -EINVAL;
    long v = 0;
    bool neg = false;
    if (*s == '-') {
        neg = true;
        s++;
        if (!*s)
            return -EINVAL;
    }
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -EINVAL;
        if (v > (LONG_MAX - (*s - '0')) / 10)
            return -ERANGE;
        v = v * 10 + (*s - '0');
    }
    if (neg)
        v = -v;
    if (v < min || v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, long *out)
{
    static const char *yes[] = {"1", "true", "yes", "on"}, *no[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -EINVAL;
}

/* Store one value for option i; `what` names its source in errors. */
static int set_value(struct opts *o, size_t i, const char *v, const char *src, const char *what,
                     char *err, size_t errcap)
{
    const struct opt *d = &o->defs[i];
    struct opt_value *val = &o->vals[i];
    switch (d->type) {
    case OPT_INT:
        if (parse_long(v, d->min, d->max, &val->num) < 0) {
            snprintf(err, errcap, "%s: expected an integer %ld..%ld, got \"%.64s\"", what, d->min,
                     d->max, v);
            return -EINVAL;
        }
        break;
    case OPT_BOOL:
        if (parse_bool(v, &val->num) < 0) {
            snprintf(err, errcap, "%s: expected true or false, got \"%.64s\"", what, v);
            return -EINVAL;
        }
        break;
    case OPT_LIST:
        if (strcmp(val->src, src) != 0)
            val->nlist = 0; /* flags replace the env/default list */
        if (val->nlist == OPTS_MAX_LIST) {
            snprintf(err, errcap, "%s: at most %d values", what, OPTS_MAX_LIST);
            return -EINVAL;
        }
        val->list[val->nlist++] = v;
        break;
    case OPT_STRING:
        break;
    }
    if (d->type != OPT_LIST && !*v && d->type != OPT_STRING) {
        snprintf(err, errcap, "%s: empty value", what);
        return -EINVAL;
    }
    val->str = v;
    val->src = src;
    val->set = strcmp(src, "default") != 0;
    return 0;
}

static int apply_text(struct opts *o, size_t i, const char *v, const char *src, const char *what,
                      char *err, size_t errcap)
{
    if (o->defs[i].type != OPT_LIST || strcmp(src, "flag") == 0)
        return set_value(o, i, v, src, what, err, errcap);
    /* comma-separated list from env or default */
    if (o->nenvcopy == OPTS_MAX_LIST) {
        snprintf(err, errcap, "%s: too many list options", what);
        return -EINVAL;
    }
    char *copy = strdup(v);
    if (!copy) {
        snprintf(err, errcap, "out of memory");
        return -ENOMEM;
    }
    o->envcopy[o->nenvcopy++] = copy;
    o->vals[i].nlist = 0;
    o->vals[i].src = src;
    for (char *p = copy; p && *p;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = 0;
        if (*p) {
            int r = set_value(o, i, p, src, what, err, errcap);
            if (r < 0)
                return r;
        }
        p = comma ? comma + 1 : NULL;
    }
    return 0;
}

/* --help / -h anywhere on the line, except as the value of a flag that takes
 * one: it is answered before anything else is looked at. */
static bool help_asked(const struct opt *defs, size_t n, int argc, char **argv)
{
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--help") == 0 || strcmp(argv[a], "-h") == 0)
            return true;
        if (strncmp(argv[a], "--", 2) != 0 || strchr(argv[a], '='))
            continue;
        for (size_t i = 0; i < n; i++)
            if (!defs[i].no_flag && defs[i].type != OPT_BOOL &&
                strcmp(defs[i].name, argv[a] + 2) == 0) {
                a++; /* its value */
                break;
            }
    }
    return false;
}

int opts_parse(struct opts *o, const struct opt *defs, size_t n, const char *env_prefix, int argc,
               char **argv, char *err, size_t errcap)
{
    memset(o, 0, sizeof *o);
    o->defs = defs;
    o->n = n;
    o->env_prefix = env_prefix;
    o->vals = calloc(n, sizeof *o->vals);
    if (!o->vals) {
        snprintf(err, errcap, "out of memory");
        return -ENOMEM;
    }
    if (help_asked(defs, n, argc, argv))
        return 1;
    for (size_t i = 0; i < n; i++) {
        o->vals[i].src = "default";
        if (defs[i].type == OPT_BOOL)
            o->vals[i].num = 0;
        if (defs[i].def) {
            int r = apply_text(o, i, defs[i].def, "default", defs[i].name, err, errcap);
            if (r < 0)
                return r;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (defs[i].no_env)
            continue;
        char ename[96];
        env_name(o, &defs[i], ename, sizeof ename);
        const char *v = getenv(ename);
        if (!v)
            continue;
        int r = apply_text(o, i, v, "env", ename, err, errcap);
        if (r < 0)
            return r;
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return 1;
        if (strncmp(arg, "--", 2) != 0 || arg[2] == 0) {
            snprintf(err, errcap, "unexpected argument \"%.64s\" (flags start with --)", arg);
            return -EINVAL;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        size_t i;
        for (i = 0; i < n; i++)
            if (!defs[i].no_flag && strlen(defs[i].name) == nlen &&
                strncmp(defs[i].name, name, nlen) == 0)
                break;
        if (i == n) {
            snprintf(err, errcap, "unknown flag --%.*s (see --help)", (int)(nlen > 64 ? 64 : nlen),
                     name);
            return -EINVAL;
        }
        char what[80];
        snprintf(what, sizeof what, "--%s", defs[i].name);
        const char *v;
        if (defs[i].type == OPT_BOOL) {
            v = eq ? eq + 1 : "true";
        } else if (eq) {
            v = eq + 1;
        } else if (a + 1 < argc) {
            v = argv[++a];
        } else {
            snprintf(err, errcap, "%s: missing value (%s)", what,
                     defs[i].metavar ? defs[i].metavar : "VALUE");
            return -EINVAL;
        }
        int r = set_value(o, i, v, "flag", what, err, errcap);
        if (r < 0)
            return r;
    }
    return 0;
}

void opts_free(struct opts *o)
{
    for (size_t i = 0; i < o->nenvcopy; i++)
        free(o->envcopy[i]);
    free(o->vals);
    o->vals = NULL;
    o->nenvcopy = 0;
}

const struct opt_value *opts_get(const struct opts *o, const char *name)
{
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->defs[i].name, name) == 0)
            return &o->vals[i];
    abort(); /* programmer error: unknown option name */
}

void opts_help(const struct opts *o, FILE *f, const char *usage)
{
    fprintf(f, "%s\n\nOptions (flag, environment twin, default):\n", usage);
    for (size_t i = 0; i < o->n; i++) {
        const struct opt *d = &o->defs[i];
        char ename[96] = "";
        if (!d->no_env)
            env_name(o, d, ename, sizeof ename);
        char flag[96];
        if (d->no_flag)
            snprintf(flag, sizeof flag, "(env only)");
        else
            snprintf(flag, sizeof flag, "--%s%s%s", d->name, d->type == OPT_BOOL ? "" : " ",
                     d->type == OPT_BOOL ? "" : (d->metavar ? d->metavar : "VALUE"));
        fprintf(f, "  %-28s %s\n", flag, d->help);
        if (*ename || d->def)
            fprintf(f, "  %-28s %s%s%s%s\n", "", *ename ? "env " : "", ename,
                    d->def ? (*ename ? ", default " : "default ") : "", d->def ? d->def : "");
    }
}
