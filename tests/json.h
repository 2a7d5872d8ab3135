/*
 * tests/json.h -- a strict JSON reader for the tests of the `mproc`
 * command: parse what it printed with --json, then look values up by
 * path. Strict means RFC 8259: one value, nothing after it but spaces; a
 * document that does not parse fails the test with the reason and where.
 */
#ifndef MPROC_TEST_JSON_H
#define MPROC_TEST_JSON_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { J_NULL, J_BOOL, J_NUMBER, J_STRING, J_ARRAY, J_OBJECT } json_kind;

typedef struct json {
    json_kind kind;
    bool b;
    double num;
    char *str;           /* J_STRING: decoded, NUL-terminated */
    struct json **items; /* J_ARRAY, J_OBJECT: n values */
    char **keys;         /* J_OBJECT: n keys */
    size_t n;
} json;

/* Parse text; fails the test (CHECK) if it is not valid JSON. */
json *json_parse(const char *text);

/* Free a parsed document. */
void json_free(json *v);

/*
 * json_at - the value at a path of object keys and array indexes
 * separated by '.', e.g. "labs.0.metrics.lost.value"; NULL if absent.
 * An empty path is v itself.
 */
const json *json_at(const json *v, const char *path);

/* The number/bool/string at path; fails the test if absent or of
 * another kind. */
double json_num(const json *v, const char *path);
bool json_bool(const json *v, const char *path);
const char *json_str(const json *v, const char *path);

#endif /* MPROC_TEST_JSON_H */
