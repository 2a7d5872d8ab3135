/*
 * tests/xml.c -- see xml.h. Recursive descent over the productions of
 * XML 1.0 (document, element, Attribute, content, Reference, Comment,
 * PI, CDSect); the input is taken as UTF-8 and bytes >= 0x80 are allowed
 * in names and text without further checks.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner.h"
#include "xml.h"

#define MAX_DEPTH 64

struct parser {
    const char *start, *p;
    int depth;
};

__attribute__((noreturn)) static void bad(const struct parser *ps, const char *why)
{
    long at = (long)(ps->p - ps->start);
    test_fail(__FILE__, __LINE__, "not well-formed XML at byte %ld (%s): ...%.40s", at, why,
              ps->p);
}

static void *alloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    CHECK(p != NULL);
    return p;
}

static void *grow(void *p, size_t n)
{
    p = realloc(p, n);
    CHECK(p != NULL);
    return p;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void skip_space(struct parser *ps)
{
    while (is_space(*ps->p))
        ps->p++;
}

static bool starts(const struct parser *ps, const char *s)
{
    return strncmp(ps->p, s, strlen(s)) == 0;
}

/* A character XML 1.0 allows at all (for the ASCII range). */
static void check_char(const struct parser *ps, unsigned char c)
{
    if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
        bad(ps, "control character");
}

static bool name_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || c >= 0x80;
}

static bool name_char(unsigned char c)
{
    return name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

/* A Name, copied. */
static char *parse_name(struct parser *ps)
{
    const char *s = ps->p;
    if (!name_start((unsigned char)*s))
        bad(ps, "a name was expected");
    while (name_char((unsigned char)*ps->p))
        ps->p++;
    size_t n = (size_t)(ps->p - s);
    char *name = alloc(n + 1);
    memcpy(name, s, n);
    return name;
}

/* Append code point c to buf as UTF-8. */
static void put_utf8(char *buf, size_t *len, uint32_t c)
{
    unsigned char *o = (unsigned char *)buf + *len;
    size_t n;
    if (c < 0x80) {
        o[0] = (unsigned char)c;
        n = 1;
    } else if (c < 0x800) {
        o[0] = (unsigned char)(0xc0 | c >> 6);
        o[1] = (unsigned char)(0x80 | (c & 0x3f));
        n = 2;
    } else if (c < 0x10000) {
        o[0] = (unsigned char)(0xe0 | c >> 12);
        o[1] = (unsigned char)(0x80 | (c >> 6 & 0x3f));
        o[2] = (unsigned char)(0x80 | (c & 0x3f));
        n = 3;
    } else {
        o[0] = (unsigned char)(0xf0 | c >> 18);
        o[1] = (unsigned char)(0x80 | (c >> 12 & 0x3f));
        o[2] = (unsigned char)(0x80 | (c >> 6 & 0x3f));
        o[3] = (unsigned char)(0x80 | (c & 0x3f));
        n = 4;
    }
    *len += n;
}

/* A Reference after its '&': a predefined entity or a character
 * reference, decoded into buf. */
static void parse_reference(struct parser *ps, char *buf, size_t *len)
{
    static const struct { const char *name; char c; } predefined[] = {
        { "amp;", '&' }, { "lt;", '<' }, { "gt;", '>' }, { "quot;", '"' }, { "apos;", '\'' },
    };
    for (size_t i = 0; i < sizeof predefined / sizeof predefined[0]; i++) {
        if (starts(ps, predefined[i].name)) {
            ps->p += strlen(predefined[i].name);
            buf[(*len)++] = predefined[i].c;
            return;
        }
    }
    if (*ps->p != '#')
        bad(ps, "'&' that starts no known entity");
    ps->p++;
    bool hex = *ps->p == 'x';
    ps->p += hex;
    uint32_t c = 0;
    int digits = 0;
    for (;; ps->p++, digits++) {
        char d = *ps->p;
        int v = d >= '0' && d <= '9' ? d - '0'
                : hex && d >= 'a' && d <= 'f' ? d - 'a' + 10
                : hex && d >= 'A' && d <= 'F' ? d - 'A' + 10
                                              : -1;
        if (v < 0)
            break;
        c = c * (hex ? 16 : 10) + (uint32_t)v;
        if (c > 0x10FFFF)
            bad(ps, "character reference out of range");
    }
    if (digits == 0 || *ps->p != ';')
        bad(ps, "bad character reference");
    ps->p++;
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || (c >= 0xD800 && c <= 0xDFFF) ||
        c == 0xFFFE || c == 0xFFFF)
        bad(ps, "character reference to a character XML does not allow");
    put_utf8(buf, len, c);
}

/* A quoted attribute value, decoded. */
static char *parse_attr_value(struct parser *ps)
{
    char quote = *ps->p;
    if (quote != '"' && quote != '\'')
        bad(ps, "attribute value not in quotes");
    ps->p++;
    const char *end = strchr(ps->p, quote);
    if (end == NULL)
        bad(ps, "attribute value not closed");
    char *v = alloc((size_t)(end - ps->p) + 1);
    size_t len = 0;
    while (*ps->p != quote) {
        unsigned char c = (unsigned char)*ps->p;
        check_char(ps, c);
        if (c == '<')
            bad(ps, "'<' in an attribute value");
        ps->p++;
        if (c == '&')
            parse_reference(ps, v, &len);
        else
            v[len++] = (char)c;
    }
    ps->p++;
    v[len] = '\0';
    return v;
}

/* After "<!--": a comment up to and including "-->". */
static void parse_comment(struct parser *ps)
{
    for (;; ps->p++) {
        if (*ps->p == '\0')
            bad(ps, "comment not closed");
        check_char(ps, (unsigned char)*ps->p);
        if (starts(ps, "--")) {
            if (ps->p[2] != '>')
                bad(ps, "'--' inside a comment");
            ps->p += 3;
            return;
        }
    }
}

/* After "<?": a processing instruction up to and including "?>". */
static void parse_pi(struct parser *ps)
{
    free(parse_name(ps));
    for (;; ps->p++) {
        if (*ps->p == '\0')
            bad(ps, "processing instruction not closed");
        check_char(ps, (unsigned char)*ps->p);
        if (starts(ps, "?>")) {
            ps->p += 2;
            return;
        }
    }
}

/* Comments, processing instructions and white space. */
static void parse_misc(struct parser *ps)
{
    for (;;) {
        skip_space(ps);
        if (starts(ps, "<!--")) {
            ps->p += 4;
            parse_comment(ps);
        } else if (starts(ps, "<?")) {
            ps->p += 2;
            parse_pi(ps);
        } else {
            return;
        }
    }
}

static void add_text(xml_node *e, size_t *cap, const char *s, size_t n)
{
    size_t have = e->text ? strlen(e->text) : 0;
    if (have + n + 1 > *cap) {
        *cap = (have + n + 1) * 2;
        e->text = grow(e->text, *cap);
    }
    memcpy(e->text + have, s, n);
    e->text[have + n] = '\0';
}

static xml_node *parse_element(struct parser *ps);

/* The content of e up to its end tag (consumed). */
static void parse_content(struct parser *ps, xml_node *e)
{
    size_t text_cap = 0;
    char *buf = alloc(strlen(ps->p) + 1);
    for (;;) {
        size_t len = 0;
        while (*ps->p != '<' && *ps->p != '\0') {
            unsigned char c = (unsigned char)*ps->p;
            check_char(ps, c);
            if (starts(ps, "]]>"))
                bad(ps, "']]>' in text");
            ps->p++;
            if (c == '&')
                parse_reference(ps, buf, &len);
            else
                buf[len++] = (char)c;
        }
        add_text(e, &text_cap, buf, len);
        if (*ps->p == '\0')
            bad(ps, "element not closed");
        if (starts(ps, "</")) {
            ps->p += 2;
            char *name = parse_name(ps);
            bool same = strcmp(name, e->name) == 0;
            free(name);
            if (!same)
                bad(ps, "end tag does not match the start tag");
            skip_space(ps);
            if (*ps->p != '>')
                bad(ps, "end tag not closed by '>'");
            ps->p++;
            free(buf);
            return;
        }
        if (starts(ps, "<!--")) {
            ps->p += 4;
            parse_comment(ps);
        } else if (starts(ps, "<![CDATA[")) {
            ps->p += 9;
            const char *end = strstr(ps->p, "]]>");
            if (end == NULL)
                bad(ps, "CDATA section not closed");
            for (const char *c = ps->p; c < end; c++)
                check_char(ps, (unsigned char)*c);
            add_text(e, &text_cap, ps->p, (size_t)(end - ps->p));
            ps->p = end + 3;
        } else if (starts(ps, "<?")) {
            ps->p += 2;
            parse_pi(ps);
        } else if (starts(ps, "<!")) {
            bad(ps, "declaration inside an element");
        } else {
            xml_node *child = parse_element(ps);
            e->children = grow(e->children, (e->n + 1) * sizeof *e->children);
            e->children[e->n++] = child;
        }
    }
}

/* An element, from its '<'. */
static xml_node *parse_element(struct parser *ps)
{
    if (++ps->depth > MAX_DEPTH)
        bad(ps, "nested too deep");
    if (*ps->p != '<')
        bad(ps, "'<' expected");
    ps->p++;
    xml_node *e = alloc(sizeof *e);
    e->name = parse_name(ps);
    for (;;) {
        bool spaced = is_space(*ps->p);
        skip_space(ps);
        if (starts(ps, "/>")) {
            ps->p += 2;
            break;
        }
        if (*ps->p == '>') {
            ps->p++;
            parse_content(ps, e);
            break;
        }
        if (!spaced)
            bad(ps, "attributes must be separated by white space");
        char *name = parse_name(ps);
        for (size_t i = 0; i < e->nattrs; i++)
            if (strcmp(e->attr_names[i], name) == 0)
                bad(ps, "attribute given twice");
        skip_space(ps);
        if (*ps->p != '=')
            bad(ps, "'=' expected after an attribute name");
        ps->p++;
        skip_space(ps);
        char *value = parse_attr_value(ps);
        e->attr_names = grow(e->attr_names, (e->nattrs + 1) * sizeof *e->attr_names);
        e->attr_values = grow(e->attr_values, (e->nattrs + 1) * sizeof *e->attr_values);
        e->attr_names[e->nattrs] = name;
        e->attr_values[e->nattrs++] = value;
    }
    if (e->text == NULL)
        e->text = alloc(1);
    ps->depth--;
    return e;
}

xml_node *xml_parse(const char *text)
{
    CHECK(text != NULL);
    struct parser ps = { text, text, 0 };
    if (starts(&ps, "\xEF\xBB\xBF"))
        ps.p += 3; /* a UTF-8 byte order mark */
    parse_misc(&ps);
    if (starts(&ps, "<!"))
        bad(&ps, "a document type declaration (or a stray '<!')");
    if (*ps.p != '<')
        bad(&ps, "no root element");
    xml_node *root = parse_element(&ps);
    parse_misc(&ps);
    if (*ps.p != '\0')
        bad(&ps, "something after the root element");
    return root;
}

void xml_free(xml_node *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->n; i++)
        xml_free(e->children[i]);
    for (size_t i = 0; i < e->nattrs; i++) {
        free(e->attr_names[i]);
        free(e->attr_values[i]);
    }
    free(e->children);
    free(e->attr_names);
    free(e->attr_values);
    free(e->name);
    free(e->text);
    free(e);
}

const char *xml_attr(const xml_node *e, const char *name)
{
    for (size_t i = 0; e && i < e->nattrs; i++)
        if (strcmp(e->attr_names[i], name) == 0)
            return e->attr_values[i];
    return NULL;
}

const xml_node *xml_find(const xml_node *e, const char *name, const char *attr,
                         const char *value)
{
    if (e == NULL)
        return NULL;
    if (strcmp(e->name, name) == 0) {
        const char *v = attr ? xml_attr(e, attr) : NULL;
        if (attr == NULL || (v != NULL && (value == NULL || strcmp(v, value) == 0)))
            return e;
    }
    for (size_t i = 0; i < e->n; i++) {
        const xml_node *found = xml_find(e->children[i], name, attr, value);
        if (found)
            return found;
    }
    return NULL;
}

size_t xml_count(const xml_node *e, const char *name)
{
    if (e == NULL)
        return 0;
    size_t n = strcmp(e->name, name) == 0;
    for (size_t i = 0; i < e->n; i++)
        n += xml_count(e->children[i], name);
    return n;
}

int svg_series_points(const xml_node *svg, const char *name)
{
    const xml_node *g = xml_find(svg, "g", "data-series", name);
    if (g == NULL)
        return -1;
    const xml_node *line = xml_find(g, "polyline", "points", NULL);
    CHECK_MSG(line != NULL, "series '%s' has no polyline", name);
    const char *p = xml_attr(line, "points");
    int n = 0;
    while (*p != '\0') {
        char *end;
        double x = strtod(p, &end);
        CHECK_MSG(end != p && *end == ',', "series '%s': bad point at '%.20s'", name, p);
        p = end + 1;
        double y = strtod(p, &end);
        CHECK_MSG(end != p && (*end == ' ' || *end == '\0') && isfinite(x) && isfinite(y),
                  "series '%s': bad point at '%.20s'", name, p);
        n++;
        p = *end == ' ' ? end + 1 : end;
        CHECK_MSG(*end != ' ' || *p != '\0', "series '%s': trailing space", name);
    }
    return n;
}

char *xml_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    CHECK_MSG(f != NULL, "cannot open %s", path);
    size_t cap = 4096, len = 0;
    char *buf = alloc(cap);
    for (;;) {
        if (len + 1 >= cap)
            buf = grow(buf, cap *= 2);
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        if (got == 0)
            break;
        len += got;
    }
    CHECK_MSG(!ferror(f), "cannot read %s", path);
    fclose(f);
    buf[len] = '\0';
    CHECK_MSG(strlen(buf) == len, "%s holds a NUL byte", path);
    return buf;
}
