/*
 * opts: one table of options drives flag parsing, environment twins and
 * --help (DESIGN.md decision 9). For an option named "grace-period" with env
 * prefix "TUNNELD" the flag is --grace-period (also --grace-period=VALUE) and
 * the environment twin TUNNELD_GRACE_PERIOD. Flags beat the environment,
 * which beats the default. List options repeat as flags and are
 * comma-separated in the environment. Errors name the flag or variable and
 * the bad value.
 */
#ifndef WARREN_OPTS_H
#define WARREN_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum opt_type {
    OPT_STRING,
    OPT_INT,  /* integer within [min, max] */
    OPT_BOOL, /* flag without value; env: 1/0/true/false/yes/no */
    OPT_LIST, /* repeatable string */
};

struct opt {
    const char *name;
    enum opt_type type;
    long min, max;
    const char *def; /* default, as text; NULL: unset */
    const char *metavar;
    const char *help;
    bool no_env;  /* no environment twin */
    bool no_flag; /* environment only (secrets must not be in argv) */
};

#define OPTS_MAX_LIST 16

struct opt_value {
    bool set;        /* given by flag or env (not default) */
    const char *src; /* "flag", "env" or "default" */
    const char *str; /* string form (OPT_STRING/INT/BOOL), NULL if unset */
    long num;        /* OPT_INT and OPT_BOOL */
    const char *list[OPTS_MAX_LIST];
    size_t nlist;
};

struct opts {
    const struct opt *defs;
    size_t n;
    const char *env_prefix;       /* "TUNNELD" */
    struct opt_value *vals;       /* n entries, owned */
    char *envcopy[OPTS_MAX_LIST]; /* storage for split env lists */
    size_t nenvcopy;
};

/* Parse argv (from argv[0] on; argv[0] is skipped) and the environment.
 * Returns 0, 1 when --help was asked (nothing else checked), or -EINVAL with a
 * one-line message in err ("--port: expected an integer 1..65535, got \"x\"",
 * "unknown flag --prot"). Strings point into argv/environ or owned copies. */
int opts_parse(struct opts *o, const struct opt *defs, size_t n, const char *env_prefix, int argc,
               char **argv, char *err, size_t errcap);
void opts_free(struct opts *o);
/* The value of option `name` (which must be in the table). */
const struct opt_value *opts_get(const struct opts *o, const char *name);
/* Print the usage line and one line per option with its env twin and default. */
void opts_help(const struct opts *o, FILE *f, const char *usage);

#endif
