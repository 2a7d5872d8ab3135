/*
 * tools/svg.c -- a self-contained SVG line chart (tools.h), for the
 * figures of `mproc lab amdahl --svg` and `mproc bench --svg`.
 *
 * The document is plain SVG 1.1 with nothing outside it (no script, no
 * style sheet, no font or image to fetch), so a browser or an image
 * viewer shows it as it is. Its layout, top to bottom:
 *
 *   <title>, a white background, the chart's title;
 *   the plot area: grid lines at the ticks, the axes, tick marks with
 *   their numbers, the axis labels;
 *   one <g class="series" data-series="NAME"> per series: a <polyline>
 *   whose points attribute holds the series' finite points in order, and
 *   a <circle> on each point when the series asks for markers;
 *   the legend: a line and the name of each series.
 *
 * Ticks fall on "nice" numbers (1, 2 or 5 times a power of ten), about
 * five per axis, and the axis ranges are widened to whole ticks. Every
 * text written (title, labels, series names) is escaped for XML, and
 * control characters that XML 1.0 forbids are dropped.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "tools.h"

/* The canvas and the plot area inside it, in SVG user units (pixels). */
#define WIDTH 760.0
#define HEIGHT 440.0
#define LEFT 70.0    /* room for the y numbers and label */
#define RIGHT 240.0  /* room for the legend */
#define TOP 50.0     /* room for the title */
#define BOTTOM 60.0  /* room for the x numbers and label */
#define PLOT_W (WIDTH - LEFT - RIGHT)
#define PLOT_H (HEIGHT - TOP - BOTTOM)
#define MAX_TICKS 24

static const char *const palette[] = { "#1f77b4", "#d62728", "#2ca02c",
                                       "#ff7f0e", "#9467bd", "#8c564b" };
#define N_COLOURS (sizeof palette / sizeof palette[0])

/* The visible range of one axis, its tick step and the number of steps
 * (ticks are at lo + i * step for i = 0 .. steps). */
struct axis {
    double lo, hi, step;
    int steps;
};

/* s, escaped for XML text or a quoted attribute value. */
static void put_escaped(FILE *out, const char *s)
{
    for (const unsigned char *c = (const unsigned char *)(s ? s : ""); *c; c++) {
        switch (*c) {
        case '&': fputs("&amp;", out); break;
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '"': fputs("&quot;", out); break;
        case '\'': fputs("&apos;", out); break;
        default:
            if (*c >= 0x20 || *c == '\t' || *c == '\n')
                fputc(*c, out);
            break; /* other control characters are not allowed in XML */
        }
    }
}

/* The "nice" step (1, 2 or 5 times a power of ten) that cuts `span` into
 * about `parts` parts. */
static double nice_step(double span, int parts)
{
    double raw = span / parts;
    double mag = pow(10.0, floor(log10(raw)));
    double f = raw / mag;
    double nice = f <= 1.0 ? 1.0 : f <= 2.0 ? 2.0 : f <= 5.0 ? 5.0 : 10.0;
    return nice * mag;
}

/* The axis for data in [lo, hi]: widened to whole ticks; a range with
 * nothing in it is widened around its value first. `whole`: steps of 1
 * at least. */
static struct axis make_axis(double lo, double hi, bool whole)
{
    if (!(hi > lo)) {
        double pad = fabs(lo) > 0 ? fabs(lo) * 0.5 : 1.0;
        lo -= pad;
        hi += pad;
    }
    struct axis a;
    a.step = nice_step(hi - lo, 5);
    if (whole && a.step < 1.0)
        a.step = 1.0;
    a.lo = floor(lo / a.step + 1e-9) * a.step;
    a.hi = ceil(hi / a.step - 1e-9) * a.step;
    while ((a.hi - a.lo) / a.step > MAX_TICKS) /* never many more than asked */
        a.step *= 2;
    a.hi = a.lo + ceil((a.hi - a.lo) / a.step - 1e-9) * a.step;
    a.steps = (int)lround((a.hi - a.lo) / a.step);
    return a;
}

static double tick(const struct axis *a, int i)
{
    return a->lo + i * a->step;
}

static double px(const struct axis *a, double x)
{
    return LEFT + (x - a->lo) / (a->hi - a->lo) * PLOT_W;
}

static double py(const struct axis *a, double y)
{
    return TOP + PLOT_H - (y - a->lo) / (a->hi - a->lo) * PLOT_H;
}

static bool finite_point(const mproc__svg_series *s, size_t i)
{
    return isfinite(s->x[i]) && isfinite(s->y[i]);
}

/* The data's bounds; false if there is no finite point at all. */
static bool data_bounds(const mproc__svg_chart *c, double *xlo, double *xhi, double *ylo,
                        double *yhi)
{
    bool any = false;
    for (size_t k = 0; k < c->nseries; k++) {
        const mproc__svg_series *s = &c->series[k];
        for (size_t i = 0; i < s->n; i++) {
            if (!finite_point(s, i))
                continue;
            if (!any) {
                *xlo = *xhi = s->x[i];
                *ylo = *yhi = s->y[i];
                any = true;
            }
            *xlo = fmin(*xlo, s->x[i]);
            *xhi = fmax(*xhi, s->x[i]);
            *ylo = fmin(*ylo, s->y[i]);
            *yhi = fmax(*yhi, s->y[i]);
        }
    }
    return any;
}

static int check_chart(const mproc__svg_chart *c)
{
    if (c == NULL || (c->nseries > 0 && c->series == NULL))
        return -EINVAL;
    for (size_t k = 0; k < c->nseries; k++) {
        const mproc__svg_series *s = &c->series[k];
        if (s->n > 0 && (s->x == NULL || s->y == NULL))
            return -EINVAL;
    }
    const double bounds[] = { c->x_min, c->x_max, c->y_min, c->y_max };
    for (size_t i = 0; i < 4; i++)
        if (isinf(bounds[i]))
            return -EINVAL;
    if (!isnan(c->x_min) && !isnan(c->x_max) && c->x_min > c->x_max)
        return -EINVAL;
    if (!isnan(c->y_min) && !isnan(c->y_max) && c->y_min > c->y_max)
        return -EINVAL;
    return 0;
}

/* A tick's number, without trailing zeros ("0.5", "2", "1e+06"). */
static void put_number(FILE *out, double v, double step)
{
    if (fabs(v) < step * 1e-6)
        v = 0.0; /* not "-0" or "1e-17" */
    fprintf(out, "%.6g", v);
}

static void put_axes(FILE *out, const mproc__svg_chart *c, const struct axis *ax,
                     const struct axis *ay)
{
    fputs("<g class=\"grid\" stroke=\"#e0e0e0\" stroke-width=\"1\">\n", out);
    for (int i = 0; i <= ax->steps; i++)
        fprintf(out, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n",
                px(ax, tick(ax, i)), TOP, px(ax, tick(ax, i)), TOP + PLOT_H);
    for (int i = 0; i <= ay->steps; i++)
        fprintf(out, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", LEFT,
                py(ay, tick(ay, i)), LEFT + PLOT_W, py(ay, tick(ay, i)));
    fputs("</g>\n", out);

    fputs("<g class=\"axes\" stroke=\"#000000\" stroke-width=\"1.5\">\n", out);
    fprintf(out, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", LEFT,
            TOP + PLOT_H, LEFT + PLOT_W, TOP + PLOT_H);
    fprintf(out, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", LEFT, TOP, LEFT,
            TOP + PLOT_H);
    fputs("</g>\n", out);

    fputs("<g class=\"x-ticks\" text-anchor=\"middle\">\n", out);
    for (int i = 0; i <= ax->steps; i++) {
        double v = tick(ax, i), x = px(ax, v);
        fprintf(out, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#000000\"/>\n",
                x, TOP + PLOT_H, x, TOP + PLOT_H + 6);
        fprintf(out, "<text x=\"%.2f\" y=\"%.2f\">", x, TOP + PLOT_H + 20);
        put_number(out, v, ax->step);
        fputs("</text>\n", out);
    }
    fputs("</g>\n<g class=\"y-ticks\" text-anchor=\"end\">\n", out);
    for (int i = 0; i <= ay->steps; i++) {
        double v = tick(ay, i), y = py(ay, v);
        fprintf(out, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#000000\"/>\n",
                LEFT - 6, y, LEFT, y);
        fprintf(out, "<text x=\"%.2f\" y=\"%.2f\">", LEFT - 9, y + 4);
        put_number(out, v, ay->step);
        fputs("</text>\n", out);
    }
    fputs("</g>\n", out);

    fprintf(out, "<text class=\"x-label\" x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">",
            LEFT + PLOT_W / 2, HEIGHT - 14);
    put_escaped(out, c->x_label);
    fputs("</text>\n", out);
    fprintf(out,
            "<text class=\"y-label\" x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\" "
            "transform=\"rotate(-90 %.2f %.2f)\">",
            18.0, TOP + PLOT_H / 2, 18.0, TOP + PLOT_H / 2);
    put_escaped(out, c->y_label);
    fputs("</text>\n", out);
}

static const char *dash_of(int style)
{
    switch (style) {
    case MPROC__SVG_DASHED: return " stroke-dasharray=\"8 5\"";
    case MPROC__SVG_DOTTED: return " stroke-dasharray=\"2 4\"";
    default: return "";
    }
}

static void put_series(FILE *out, const mproc__svg_series *s, size_t k, const struct axis *ax,
                       const struct axis *ay)
{
    const char *colour = palette[k % N_COLOURS];
    fputs("<g class=\"series\" data-series=\"", out);
    put_escaped(out, s->name);
    fputs("\">\n<polyline fill=\"none\" stroke-width=\"2\" stroke=\"", out);
    fprintf(out, "%s\"%s points=\"", colour, dash_of(s->style));
    bool first = true;
    for (size_t i = 0; i < s->n; i++) {
        if (!finite_point(s, i))
            continue;
        fprintf(out, "%s%.2f,%.2f", first ? "" : " ", px(ax, s->x[i]), py(ay, s->y[i]));
        first = false;
    }
    fputs("\"/>\n", out);
    for (size_t i = 0; s->markers && i < s->n; i++)
        if (finite_point(s, i))
            fprintf(out, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3.5\" fill=\"%s\"/>\n",
                    px(ax, s->x[i]), py(ay, s->y[i]), colour);
    fputs("</g>\n", out);
}

static void put_legend(FILE *out, const mproc__svg_chart *c)
{
    double x = LEFT + PLOT_W + 16, y = TOP + 10;
    fputs("<g class=\"legend\">\n", out);
    for (size_t k = 0; k < c->nseries; k++, y += 22) {
        const mproc__svg_series *s = &c->series[k];
        fprintf(out,
                "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke-width=\"2\" "
                "stroke=\"%s\"%s/>\n",
                x, y, x + 28, y, palette[k % N_COLOURS], dash_of(s->style));
        fprintf(out, "<text x=\"%.2f\" y=\"%.2f\">", x + 34, y + 4);
        put_escaped(out, s->name);
        fputs("</text>\n", out);
    }
    fputs("</g>\n", out);
}

int mproc__svg_write(FILE *out, const mproc__svg_chart *c)
{
    if (out == NULL)
        return -EINVAL;
    int rc = check_chart(c);
    if (rc < 0)
        return rc;
    double xlo = 0, xhi = 1, ylo = 0, yhi = 1;
    data_bounds(c, &xlo, &xhi, &ylo, &yhi);
    if (!isnan(c->x_min))
        xlo = c->x_min;
    if (!isnan(c->x_max))
        xhi = c->x_max;
    if (!isnan(c->y_min))
        ylo = c->y_min;
    if (!isnan(c->y_max))
        yhi = c->y_max;
    struct axis ax = make_axis(xlo, xhi, c->x_whole), ay = make_axis(ylo, yhi, false);

    fprintf(out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%.0f\" "
            "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" "
            "font-size=\"12\">\n<title>",
            WIDTH, HEIGHT, WIDTH, HEIGHT);
    put_escaped(out, c->title);
    fprintf(out, "</title>\n<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" "
                 "fill=\"#ffffff\"/>\n",
            WIDTH, HEIGHT);
    fprintf(out, "<text class=\"title\" x=\"%.2f\" y=\"28\" text-anchor=\"middle\" "
                 "font-size=\"16\" font-weight=\"bold\">",
            WIDTH / 2);
    put_escaped(out, c->title);
    fputs("</text>\n", out);
    put_axes(out, c, &ax, &ay);
    for (size_t k = 0; k < c->nseries; k++)
        put_series(out, &c->series[k], k, &ax, &ay);
    put_legend(out, c);
    fputs("</svg>\n", out);
    return ferror(out) ? -EIO : 0;
}

int mproc__svg_save(const char *path, const mproc__svg_chart *c)
{
    if (path == NULL || *path == '\0')
        return -EINVAL;
    int rc = check_chart(c);
    if (rc < 0)
        return rc;
    FILE *out = fopen(path, "w");
    if (out == NULL)
        return -errno;
    rc = mproc__svg_write(out, c);
    if (fclose(out) != 0 && rc == 0)
        rc = -errno;
    return rc;
}
