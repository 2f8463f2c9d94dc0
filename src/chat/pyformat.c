/*
 * pyformat.c — the two pieces of Python's string behaviour that jinja2 hands to Python
 * itself rather than implementing: printf-style formatting (`"%s=%d" % (k, v)` and the
 * `format` filter, which is `str(value) % args`) and markupsafe's Markup (what `|safe`
 * and `|escape` give): `Markup + str` and `Markup % args` escape the plain operand, so a
 * template that concatenates onto a `|safe` value prints `&lt;` where it wrote `<`.
 *
 * A Markup value is a JV_STR with tuple == JV_MARKUP; everything else treats it as the
 * str it is (printing, comparing, tojson). The formatting subset is the conversions
 * templates use: %s %r %d %i %f %F %e %E %g %G %x %X %o %c %% with flags (-+ 0#), width,
 * precision and %(key)s against a mapping. Anything else is a render error naming it,
 * never a guessed output.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <utf8proc.h>

#include "chat/jinja_int.h"

#define MAX_NUM_PREC 400

/* markupsafe.escape of a str: & < > ' " (the order and the entities are markupsafe's) */
jv tok__markup_escape(jrender *r, jv v)
{
  if (v.t == JV_STR && v.tuple == JV_MARKUP) return v;
  jv s = tok__jv_to_str(r, v);
  tok__jr_step(r, s.u.s.n / 64);
  size_t extra = 0;
  for (size_t i = 0; i < s.u.s.n; i++) {
    char c = s.u.s.p[i];
    extra += c == '&' ? 4 : c == '<' || c == '>' ? 3 : c == '\'' || c == '"' ? 4 : 0;
  }
  char *o = tok__jr_alloc(r, s.u.s.n + extra + 1);
  size_t n = 0;
  for (size_t i = 0; i < s.u.s.n; i++) {
    const char *rep = NULL;
    switch (s.u.s.p[i]) {
    case '&': rep = "&amp;"; break;
    case '<': rep = "&lt;"; break;
    case '>': rep = "&gt;"; break;
    case '\'': rep = "&#39;"; break;
    case '"': rep = "&#34;"; break;
    default: o[n++] = s.u.s.p[i]; continue;
    }
    size_t k = strlen(rep);
    memcpy(o + n, rep, k);
    n += k;
  }
  o[n] = 0;
  jv out = tok__jv_str(o, n);
  out.tuple = JV_MARKUP;
  return out;
}

static int64_t fmt_int(jrender *r, jv v, char conv)
{
  if (v.t == JV_INT) return v.u.i;
  if (v.t == JV_BOOL) return v.u.b;
  if (v.t == JV_FLOAT && (conv == 'd' || conv == 'i')) {
    if (!isfinite(v.u.f) || fabs(v.u.f) >= 9.2e18) FAIL("%%%c format: float out of range", conv);
    return (int64_t)v.u.f; /* Python's int(): towards zero */
  }
  if (conv == 'd' || conv == 'i')
    FAIL("%%%c format: a real number is required, not %s", conv, tok__jv_type_name(v));
  FAIL("%%%c format: an integer is required, not %s", conv, tok__jv_type_name(v));
}

static double fmt_float(jrender *r, jv v, char conv)
{
  if (v.t == JV_FLOAT) return v.u.f;
  if (v.t == JV_INT) return (double)v.u.i;
  if (v.t == JV_BOOL) return v.u.b;
  FAIL("must be real number, not %s (%%%c)", tok__jv_type_name(v), conv);
}

/* pads text to width code points, as Python does for %s and numbers */
static void put_padded(jrender *r, const char *p, size_t n, long width, bool left, bool zero)
{
  size_t chars = tok__jv_str_chars(p, n);
  size_t pad = width > 0 && (size_t)width > chars ? (size_t)width - chars : 0;
  if (pad > (1u << 20)) FAIL("format width too large");
  if (!left && zero && pad && n && (p[0] == '-' || p[0] == '+' || p[0] == ' ')) {
    tok__jr_buf_put(r, r->out, p, 1); /* the sign goes before the zeros */
    p++;
    n--;
  }
  if (!left)
    for (size_t i = 0; i < pad; i++) tok__jr_buf_put(r, r->out, zero ? "0" : " ", 1);
  tok__jr_buf_put(r, r->out, p, n);
  if (left)
    for (size_t i = 0; i < pad; i++) tok__jr_buf_put(r, r->out, " ", 1);
}

jv tok__py_percent(jrender *r, jv fmt, jv argv)
{
  bool markup = fmt.tuple == JV_MARKUP;
  const jv *items = &argv;
  size_t n_items = 1, used = 0;
  bool mapping = argv.t == JV_DICT;
  if (argv.t == JV_LIST && argv.tuple == 1) { /* a tuple is the argument list */
    items = argv.u.l->v;
    n_items = argv.u.l->n;
  }
  const char *p = fmt.u.s.p, *end = p + fmt.u.s.n;
  tok__jr_step(r, fmt.u.s.n / 64);
  jdivert *d = tok__jr_divert_begin(r);
  while (p < end) {
    const char *pct = memchr(p, '%', (size_t)(end - p));
    if (!pct) {
      tok__jr_buf_put(r, r->out, p, (size_t)(end - p));
      break;
    }
    tok__jr_buf_put(r, r->out, p, (size_t)(pct - p));
    p = pct + 1;
    tok__jr_step(r, 1);
    jv x = tok__jv_none();
    bool have_key = false;
    if (p < end && *p == '(') {
      const char *close = memchr(p, ')', (size_t)(end - p));
      if (!close) FAIL("incomplete format key");
      if (!mapping) FAIL("format requires a mapping");
      const jv *hit = tok__jd_get_str(argv.u.d, p + 1, (size_t)(close - p - 1));
      if (!hit) FAIL("KeyError: '%.*s'", (int)(close - p - 1 > 60 ? 60 : close - p - 1), p + 1);
      x = *hit;
      have_key = true;
      p = close + 1;
    }
    bool left = false, zero = false, plus = false, space = false, alt = false;
    for (; p < end && strchr("-+ 0#", *p); p++) {
      if (*p == '-') left = true;
      else if (*p == '+') plus = true;
      else if (*p == ' ') space = true;
      else if (*p == '0') zero = true;
      else alt = true;
    }
    long width = -1, prec = -1;
    if (p < end && *p == '*') FAIL("'*' width in format strings is not supported");
    /* digits past the cap stop counting (the cap is refused below), so no overflow */
    for (; p < end && *p >= '0' && *p <= '9'; p++)
      if (width < (1 << 21)) width = (width < 0 ? 0 : width) * 10 + (*p - '0');
    if (p < end && *p == '.') {
      prec = 0;
      for (p++; p < end && *p >= '0' && *p <= '9'; p++)
        if (prec < (1 << 21)) prec = prec * 10 + (*p - '0');
    }
    if (width > (1 << 20) || prec > (1 << 20)) FAIL("format width too large");
    while (p < end && (*p == 'h' || *p == 'l' || *p == 'L')) p++; /* Python ignores them */
    if (p >= end) FAIL("incomplete format");
    char conv = *p++;
    if (conv == '%') {
      tok__jr_buf_put(r, r->out, "%", 1);
      continue;
    }
    if (!have_key) {
      if (mapping) x = argv; /* "%s" % {...} formats the mapping itself */
      else {
        if (used >= n_items) FAIL("not enough arguments for format string");
        x = items[used++];
      }
    }
    /* a number's digits go through buf: 22 of an int64, 309 before the point of a double,
     * and at most MAX_NUM_PREC after it (Python has no cap; a larger precision is refused,
     * never cut) */
    char spec[32], buf[1024];
    if (prec > MAX_NUM_PREC && strchr("diuxXofFeEgG", conv))
      FAIL("tokd formats numbers with a precision of at most 400 digits");
    switch (conv) {
    case 's': case 'r': case 'a': {
      jv s;
      if (conv == 's') s = tok__jv_to_str(r, x);
      else {
        jdivert *rd = tok__jr_divert_begin(r);
        tok__jv_repr_out(r, r->out, x);
        s = tok__jr_divert_end(r, rd);
      }
      if (markup) s = tok__markup_escape(r, s);
      size_t n = s.u.s.n;
      if (prec >= 0) {
        size_t i = 0;
        for (long k = 0; k < prec && i < n; k++) tok__jv_next_cp(s.u.s.p, n, &i);
        n = i;
      }
      put_padded(r, s.u.s.p, n, width, left, false);
      break;
    }
    case 'd': case 'i': case 'x': case 'X': case 'o': case 'u': {
      int64_t v = fmt_int(r, x, conv);
      char c = conv == 'i' || conv == 'u' ? 'd' : conv;
      /* digits without C's '#': Python's alternate form is a prefix 0o, 0x or 0X after the
       * sign, also for zero and with a precision (C's '#' makes octal's leading zero part of
       * the precision and writes no prefix for zero) */
      if (c == 'd')
        snprintf(spec, sizeof spec, "%%%s%s.%ldll%c", plus ? "+" : "", space ? " " : "",
                 prec < 0 ? 1L : prec, c);
      else
        snprintf(spec, sizeof spec, "%%.%ldll%c", prec < 0 ? 1L : prec, c);
      size_t k = 0;
      if (c != 'd' && (v < 0 || plus || space)) /* Python prints the sign, C two's complement */
        buf[k++] = v < 0 ? '-' : plus ? '+' : ' ';
      if (c != 'd' && alt) buf[k++] = '0', buf[k++] = c == 'o' ? 'o' : c;
      unsigned long long mag = v < 0 ? 0 - (unsigned long long)v : (unsigned long long)v;
      if (c == 'd') snprintf(buf, sizeof buf, spec, (long long)v);
      else snprintf(buf + k, sizeof buf - k, spec, mag);
      put_padded(r, buf, strlen(buf), width, left, zero && !left);
      break;
    }
    case 'f': case 'F': case 'e': case 'E': case 'g': case 'G': {
      double v = fmt_float(r, x, conv);
      snprintf(spec, sizeof spec, "%%%s%s%s.%ld%c", plus ? "+" : "", space ? " " : "", alt ? "#" : "",
               prec < 0 ? 6L : prec, conv);
      snprintf(buf, sizeof buf, spec, v);
      if (isinf(v) || isnan(v)) { /* Python: inf, nan (lower case for f/e/g) */
        const char *t = isnan(v) ? "nan" : v < 0 ? "-inf" : plus ? "+inf" : "inf";
        snprintf(buf, sizeof buf, "%s", t);
        if (conv == 'F' || conv == 'E' || conv == 'G')
          for (char *q = buf; *q; q++) *q = (char)(*q >= 'a' && *q <= 'z' ? *q - 32 : *q);
        zero = false;
      }
      put_padded(r, buf, strlen(buf), width, left, zero && !left);
      break;
    }
    case 'c': {
      if (x.t == JV_STR && tok__jv_str_chars(x.u.s.p, x.u.s.n) == 1) {
        put_padded(r, x.u.s.p, x.u.s.n, width, left, false);
        break;
      }
      int64_t c = fmt_int(r, x, 'c');
      if (c < 0 || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) FAIL("%%c arg not in range(0x110000)");
      char u[4];
      size_t k = (size_t)utf8proc_encode_char((utf8proc_int32_t)c, (utf8proc_uint8_t *)u);
      put_padded(r, u, k, width, left, false);
      break;
    }
    default:
      FAIL("unsupported format character '%c' (0x%x)", conv, (unsigned)(unsigned char)conv);
    }
  }
  if (!mapping && used < n_items) FAIL("not all arguments converted during string formatting");
  jv out = tok__jr_divert_end(r, d);
  out.tuple = markup ? JV_MARKUP : 0;
  return out;
}
