/*
 * tests/xml.h -- a strict XML well-formedness checker with a tiny tree,
 * for the tests of what the `mproc` command writes as SVG.
 *
 * Strict means the well-formedness rules of XML 1.0 that a chart can
 * break: one root element; every start tag closed by a matching end tag,
 * properly nested; attribute values quoted, no '<' in them, no attribute
 * twice on an element; '&' only as one of the five predefined entities
 * or a character reference; no '<' in text; no control characters but
 * tab, newline and carriage return; comments without "--"; nothing but
 * comments, processing instructions and white space around the root. A
 * document type declaration is refused (a chart must not need one). A
 * document that breaks a rule fails the test with the reason and where.
 */
#ifndef MPROC_TEST_XML_H
#define MPROC_TEST_XML_H

#include <stddef.h>

typedef struct xml_node {
    char *name;
    char **attr_names, **attr_values; /* values decoded */
    size_t nattrs;
    char *text;                /* the element's own character data, decoded */
    struct xml_node **children;
    size_t n;
} xml_node;

/* Parse text; fails the test (CHECK) if it is not well-formed XML. */
xml_node *xml_parse(const char *text);

/* Free a parsed document. */
void xml_free(xml_node *root);

/* The value of attribute `name` of e, or NULL. */
const char *xml_attr(const xml_node *e, const char *name);

/* The first element named `name` in document order (e itself included)
 * whose attribute `attr` equals `value` (attr NULL: any such element);
 * NULL if there is none. */
const xml_node *xml_find(const xml_node *e, const char *name, const char *attr,
                         const char *value);

/* How many elements named `name` there are in e (e itself included). */
size_t xml_count(const xml_node *e, const char *name);

/* ---- charts written by the `mproc` command (src/tools/svg.c) ---- */

/* The number of points of the <polyline> of the series named `name`
 * (the <g data-series="NAME"> that holds it), or -1 if there is no such
 * series. Every point must be "x,y", two finite numbers, the points
 * separated by single spaces (fails the test otherwise). */
int svg_series_points(const xml_node *svg, const char *name);

/* The whole content of the file at path, NUL-terminated (malloc'd);
 * fails the test if it cannot be read. */
char *xml_read_file(const char *path);

#endif /* MPROC_TEST_XML_H */
