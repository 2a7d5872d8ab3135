/*
 * tests/json.c -- see json.h. Recursive descent over the grammar of RFC
 * 8259; \u escapes are decoded to UTF-8 (surrogate pairs included).
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "runner.h"

#define MAX_DEPTH 64

struct parser {
    const char *start, *p;
    int depth;
};

__attribute__((noreturn)) static void bad(const struct parser *ps, const char *why)
{
    long at = (long)(ps->p - ps->start);
    test_fail(__FILE__, __LINE__, "invalid JSON at byte %ld (%s): ...%.40s", at, why, ps->p);
}

static void *alloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    CHECK(p != NULL);
    return p;
}

static void skip_space(struct parser *ps)
{
    while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')
        ps->p++;
}

static void expect_word(struct parser *ps, const char *w)
{
    size_t n = strlen(w);
    if (strncmp(ps->p, w, n) != 0)
        bad(ps, "unknown word");
    ps->p += n;
}

static void put_utf8(char **out, uint32_t c)
{
    unsigned char *o = (unsigned char *)*out;
    if (c < 0x80) {
        *o++ = (unsigned char)c;
    } else if (c < 0x800) {
        *o++ = (unsigned char)(0xc0 | c >> 6);
        *o++ = (unsigned char)(0x80 | (c & 0x3f));
    } else if (c < 0x10000) {
        *o++ = (unsigned char)(0xe0 | c >> 12);
        *o++ = (unsigned char)(0x80 | (c >> 6 & 0x3f));
        *o++ = (unsigned char)(0x80 | (c & 0x3f));
    } else {
        *o++ = (unsigned char)(0xf0 | c >> 18);
        *o++ = (unsigned char)(0x80 | (c >> 12 & 0x3f));
        *o++ = (unsigned char)(0x80 | (c >> 6 & 0x3f));
        *o++ = (unsigned char)(0x80 | (c & 0x3f));
    }
    *out = (char *)o;
}

static uint32_t hex4(struct parser *ps)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = *ps->p++;
        if (!isxdigit((unsigned char)c))
            bad(ps, "bad \\u escape");
        v = v * 16 + (uint32_t)(isdigit((unsigned char)c) ? c - '0' : (tolower(c) - 'a' + 10));
    }
    return v;
}

/* A string; ps->p is at the opening quote. */
static char *parse_string(struct parser *ps)
{
    ps->p++;
    /* Decoded text is never longer than the source. */
    const char *end = ps->p;
    while (*end && *end != '"')
        end += (*end == '\\' && end[1]) ? 2 : 1;
    char *s = alloc((size_t)(end - ps->p) + 1), *o = s;
    for (;;) {
        unsigned char c = (unsigned char)*ps->p;
        if (c == '\0')
            bad(ps, "unterminated string");
        if (c < 0x20)
            bad(ps, "control character in string");
        ps->p++;
        if (c == '"')
            break;
        if (c != '\\') {
            *o++ = (char)c;
            continue;
        }
        char e = *ps->p++;
        switch (e) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            uint32_t u = hex4(ps);
            if (u >= 0xd800 && u < 0xdc00) {
                if (ps->p[0] != '\\' || ps->p[1] != 'u')
                    bad(ps, "lone high surrogate");
                ps->p += 2;
                uint32_t lo = hex4(ps);
                if (lo < 0xdc00 || lo >= 0xe000)
                    bad(ps, "bad low surrogate");
                u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
            } else if (u >= 0xdc00 && u < 0xe000) {
                bad(ps, "lone low surrogate");
            }
            put_utf8(&o, u);
            break;
        }
        default:
            bad(ps, "bad escape");
        }
    }
    *o = '\0';
    return s;
}

static double parse_number(struct parser *ps)
{
    const char *p = ps->p;
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (isdigit((unsigned char)*p))
            p++;
    else
        bad(ps, "bad number");
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            bad(ps, "bad fraction");
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!isdigit((unsigned char)*p))
            bad(ps, "bad exponent");
        while (isdigit((unsigned char)*p))
            p++;
    }
    double v = strtod(ps->p, NULL);
    ps->p = p;
    return v;
}

static json *parse_value(struct parser *ps);

static void append(json *v, json *item, char *key)
{
    v->items = realloc(v->items, (v->n + 1) * sizeof *v->items);
    CHECK(v->items != NULL);
    if (v->kind == J_OBJECT) {
        v->keys = realloc(v->keys, (v->n + 1) * sizeof *v->keys);
        CHECK(v->keys != NULL);
        v->keys[v->n] = key;
    }
    v->items[v->n++] = item;
}

/* An array or object; ps->p is at '[' or '{'. */
static void parse_container(struct parser *ps, json *v)
{
    char close = v->kind == J_ARRAY ? ']' : '}';
    if (++ps->depth > MAX_DEPTH)
        bad(ps, "nested too deep");
    ps->p++;
    skip_space(ps);
    if (*ps->p == close) {
        ps->p++;
        ps->depth--;
        return;
    }
    for (;;) {
        char *key = NULL;
        skip_space(ps);
        if (v->kind == J_OBJECT) {
            if (*ps->p != '"')
                bad(ps, "object key must be a string");
            key = parse_string(ps);
            skip_space(ps);
            if (*ps->p++ != ':')
                bad(ps, "':' expected after a key");
        }
        append(v, parse_value(ps), key);
        skip_space(ps);
        if (*ps->p == ',') {
            ps->p++;
            continue;
        }
        if (*ps->p != close)
            bad(ps, v->kind == J_ARRAY ? "',' or ']' expected" : "',' or '}' expected");
        ps->p++;
        ps->depth--;
        return;
    }
}

static json *parse_value(struct parser *ps)
{
    skip_space(ps);
    json *v = alloc(sizeof *v);
    switch (*ps->p) {
    case '{': v->kind = J_OBJECT; parse_container(ps, v); break;
    case '[': v->kind = J_ARRAY; parse_container(ps, v); break;
    case '"': v->kind = J_STRING; v->str = parse_string(ps); break;
    case 't': v->kind = J_BOOL; v->b = true; expect_word(ps, "true"); break;
    case 'f': v->kind = J_BOOL; expect_word(ps, "false"); break;
    case 'n': v->kind = J_NULL; expect_word(ps, "null"); break;
    default: v->kind = J_NUMBER; v->num = parse_number(ps); break;
    }
    return v;
}

json *json_parse(const char *text)
{
    struct parser ps = { text, text, 0 };
    json *v = parse_value(&ps);
    skip_space(&ps);
    if (*ps.p != '\0')
        bad(&ps, "text after the document");
    return v;
}

void json_free(json *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++) {
        json_free(v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    free(v);
}

const json *json_at(const json *v, const char *path)
{
    while (v && *path) {
        const char *dot = strchr(path, '.');
        size_t len = dot ? (size_t)(dot - path) : strlen(path);
        const json *next = NULL;
        if (v->kind == J_OBJECT) {
            for (size_t i = 0; i < v->n && !next; i++)
                if (strlen(v->keys[i]) == len && strncmp(v->keys[i], path, len) == 0)
                    next = v->items[i];
        } else if (v->kind == J_ARRAY) {
            char *end;
            unsigned long idx = strtoul(path, &end, 10);
            if (end == path + len && idx < v->n)
                next = v->items[idx];
        }
        v = next;
        path += dot ? len + 1 : len;
    }
    return v;
}

static const json *at_kind(const json *v, const char *path, json_kind kind)
{
    const json *x = json_at(v, path);
    CHECK_MSG(x != NULL, "no JSON value at '%s'", path);
    CHECK_MSG(x->kind == kind, "JSON value at '%s' is of kind %d, want %d", path, x->kind, kind);
    return x;
}

double json_num(const json *v, const char *path)
{
    return at_kind(v, path, J_NUMBER)->num;
}

bool json_bool(const json *v, const char *path)
{
    return at_kind(v, path, J_BOOL)->b;
}

const char *json_str(const json *v, const char *path)
{
    return at_kind(v, path, J_STRING)->str;
}
