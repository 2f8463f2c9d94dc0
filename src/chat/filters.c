/*
 * filters.c — jinja2's built-in filters and tests, run on values the evaluator (eval.c)
 * gives: one switch for each, over the ids the parser resolved names to (JINJA_FILTERS and
 * JINJA_TESTS in jinja_int.h), so a name costs nothing at render time.
 *
 * Each follows jinja2's own code (jinja2/filters.py, tests.py): which arguments are
 * positional, what an undefined or empty value gives, that select, map, items and the like
 * give generators, that a Markup stays Markup. Work is charged in steps by the bytes and
 * items read, as everywhere in a render.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "chat/jinja_int.h"

/* ---- tests ------------------------------------------------------------------------ */
bool tok__jr_test(jrender *r, int id, jv v, const jargs *a)
{
  jv x = tok__jarg(a, 0, NULL, tok__jv_undef("test needs an argument"));
  switch (id) {
  case TS_defined: return v.t != JV_UNDEF;
  case TS_undefined: return v.t == JV_UNDEF;
  case TS_none: return v.t == JV_NONE;
  case TS_boolean: return v.t == JV_BOOL;
  case TS_false: return v.t == JV_BOOL && !v.u.b;
  case TS_true: return v.t == JV_BOOL && v.u.b;
  case TS_integer: return v.t == JV_INT;
  case TS_float: return v.t == JV_FLOAT;
  case TS_number: return v.t == JV_INT || v.t == JV_FLOAT || v.t == JV_BOOL;
  case TS_string: return v.t == JV_STR;
  case TS_mapping: return v.t == JV_DICT;
  case TS_iterable: return v.t == JV_STR || v.t == JV_LIST || v.t == JV_DICT || v.t == JV_UNDEF;
  case TS_sequence:
    return v.t == JV_STR || (v.t == JV_LIST && v.tuple != JV_GEN) || v.t == JV_DICT || v.t == JV_UNDEF;
  case TS_callable: return v.t == JV_FUNC || v.t == JV_UNDEF; /* jinja2's Undefined has __call__ */
  /* jinja2: value % 2 == 1, value % 2 == 0, value % num == 0, with Python's % */
  case TS_odd: return tok__jv_eq(r, tok__jv_binop(r, OP_MOD, v, tok__jv_int(2)), tok__jv_int(1));
  case TS_even: return tok__jv_eq(r, tok__jv_binop(r, OP_MOD, v, tok__jv_int(2)), tok__jv_int(0));
  case TS_divisibleby: return tok__jv_eq(r, tok__jv_binop(r, OP_MOD, v, x), tok__jv_int(0));
  case TS_eq: case TS_equalto: return tok__jv_eq(r, v, x);
  case TS_ne: return !tok__jv_eq(r, v, x);
  case TS_lt: case TS_lessthan: return tok__jv_cmp(r, v, x) < 0;
  case TS_le: return tok__jv_cmp(r, v, x) <= 0;
  case TS_gt: case TS_greaterthan: return tok__jv_cmp(r, v, x) > 0;
  case TS_ge: return tok__jv_cmp(r, v, x) >= 0;
  case TS_in: return tok__jv_contains(r, x, v);
  case TS_sameas:
    if (v.t != x.t) return false;
    if (v.t == JV_NONE || v.t == JV_UNDEF) return true;
    if (v.t == JV_BOOL) return v.u.b == x.u.b;
    if (v.t == JV_LIST) return v.u.l == x.u.l;
    if (v.t == JV_DICT || v.t == JV_NS) return v.u.d == x.u.d;
    return tok__jv_eq(r, v, x) && v.t != JV_FLOAT && v.t != JV_STR ? (v.t == JV_INT && v.u.i >= -5 && v.u.i <= 256) : false;
  case TS_lower: case TS_upper: { /* jinja2: str(value).islower() / .isupper() */
    jv s = tok__jv_to_str(r, v);
    tok__jr_step(r, s.u.s.n);
    return tok__py_is_case(s, id == TS_upper);
  }
  case TS_escaped: return v.t == JV_STR && v.tuple == JV_MARKUP;
  case TS_filter: return v.t == JV_STR && tok__jinja_filter_id(v.u.s.p, v.u.s.n) >= 0;
  case TS_test: return v.t == JV_STR && tok__jinja_test_id(v.u.s.p, v.u.s.n) >= 0;
  }
  return false;
}

/* ---- filters ---------------------------------------------------------------------- */

static int test_by_name(jrender *r, jv name)
{
  name = tok__jv_need_str(r, name, "select");
  int id = tok__jinja_test_id(name.u.s.p, name.u.s.n);
  if (id < 0) FAIL("no test named '%.*s'", (int)(name.u.s.n > 60 ? 60 : name.u.s.n), name.u.s.p);
  return id;
}

/* attribute path "a.b" or index, as jinja2's make_attrgetter */
static jv attr_path_or(jrender *r, jv v, jv attr, jv def);

static jv attr_path(jrender *r, jv v, jv attr)
{
  return attr_path_or(r, v, attr, tok__jv_none());
}

/* ... each step's undefined replaced by def unless def is None (make_attrgetter's default) */
static jv attr_path_or(jrender *r, jv v, jv attr, jv def)
{
  bool has_def = def.t != JV_NONE;
  if (attr.t == JV_INT) {
    v = tok__jv_getitem(r, v, attr);
    return has_def && v.t == JV_UNDEF ? def : v;
  }
  attr = tok__jv_need_str(r, attr, "attribute");
  const char *p = attr.u.s.p, *end = p + attr.u.s.n;
  while (p <= end) {
    const char *dot = memchr(p, '.', (size_t)(end - p));
    size_t len = dot ? (size_t)(dot - p) : (size_t)(end - p);
    bool digits = len > 0;
    for (size_t i = 0; i < len; i++) digits &= p[i] >= '0' && p[i] <= '9';
    if (digits) v = tok__jv_getitem(r, v, tok__jv_int(strtoll(p, NULL, 10)));
    else v = tok__jv_getitem(r, v, tok__jv_str(p, len));
    if (has_def && v.t == JV_UNDEF) v = def;
    if (!dot) break;
    p = dot + 1;
  }
  return v;
}

static jv as_gen(jv l)
{
  l.tuple = JV_GEN;
  return l;
}

static jv select_like(jrender *r, jv v, const jargs *a, bool attr_mode, bool keep)
{
  /* jinja2's select_or_reject starts with `if value:`: None, "" or 0 select nothing */
  if (!tok__jv_truthy(v)) return as_gen(tok__jv_list_new(r, 0));
  const jlist *items = tok__jv_iterate(r, v);
  jvec out = {0};
  size_t base = attr_mode ? 1 : 0;
  jv attr = attr_mode ? tok__jarg(a, 0, NULL, tok__jv_undef("selectattr needs an attribute")) : tok__jv_none();
  bool has_test = a->n_pos > base;
  int tid = has_test ? test_by_name(r, a->pos[base]) : -1;
  jargs targs = {0};
  for (size_t i = base + 1; i < a->n_pos; i++) targs.pos[targs.n_pos++] = a->pos[i];
  for (size_t i = 0; i < items->n; i++) {
    tok__jr_step(r, 1);
    jv x = items->v[i];
    jv probe = attr_mode ? attr_path(r, x, attr) : x;
    bool ok = has_test ? tok__jr_test(r, tid, probe, &targs) : tok__jv_truthy(probe);
    if (ok == keep) tok__jvec_push(r, &out, x);
  }
  return as_gen(tok__jv_list_from(r, out.v, out.n));
}

static jv to_list(jrender *r, jv v)
{
  const jlist *l = tok__jv_iterate(r, v);
  return tok__jv_list_from(r, l->v, l->n);
}

/* What sort, min, max, unique and groupby compare: the attribute's value (attr a list: the
 * list of each one's value, as sort's "a,b"), or a pair's item, strings lowered unless
 * case_sensitive */
static jv sort_key(jrender *r, jv x, jv attr, jv def, int pair_index, bool case_sensitive)
{
  if (attr.t == JV_LIST) {
    jv key = tok__jv_list_new(r, attr.u.l->n);
    for (size_t i = 0; i < attr.u.l->n; i++)
      key.u.l->v[i] = sort_key(r, x, attr.u.l->v[i], def, pair_index, case_sensitive);
    return key;
  }
  if (attr.t != JV_NONE) x = attr_path_or(r, x, attr, def);
  else if (pair_index >= 0 && x.t == JV_LIST && x.u.l->n == 2) x = x.u.l->v[pair_index];
  if (!case_sensitive && x.t == JV_STR) x = tok__py_case(r, x, PY_LOWER);
  return x;
}

/* A stable merge sort (Python's sorted is stable, also with reverse=True). */
static void sort_items(jrender *r, jv *v, size_t n, bool reverse, bool case_sensitive, jv attr,
                       jv def, int pair_index)
{
  if (n < 2) return;
  jv *keys = tok__jr_alloc(r, n * sizeof(jv)), *tmp = tok__jr_alloc(r, n * sizeof(jv)),
     *tmpk = tok__jr_alloc(r, n * sizeof(jv));
  for (size_t i = 0; i < n; i++) keys[i] = sort_key(r, v[i], attr, def, pair_index, case_sensitive);
  for (size_t width = 1; width < n; width *= 2) {
    for (size_t lo = 0; lo < n; lo += 2 * width) {
      size_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
      size_t i = lo, j = mid, k = lo;
      while (i < mid && j < hi) {
        int c = tok__jv_cmp(r, keys[i], keys[j]);
        tok__jr_step(r, 1);
        bool left = reverse ? c >= 0 : c <= 0;
        if (left) {
          tmpk[k] = keys[i];
          tmp[k++] = v[i++];
        } else {
          tmpk[k] = keys[j];
          tmp[k++] = v[j++];
        }
      }
      while (i < mid) { tmpk[k] = keys[i]; tmp[k++] = v[i++]; }
      while (j < hi) { tmpk[k] = keys[j]; tmp[k++] = v[j++]; }
    }
    memcpy(v, tmp, n * sizeof(jv));
    memcpy(keys, tmpk, n * sizeof(jv));
  }
}

static jv json_filter(jrender *r, jv v, const jargs *a)
{
  jjson_opts o = {.ensure_ascii = false};
  jv ea = tok__jarg(a, 0, "ensure_ascii", tok__jv_bool(false));
  jv indent = tok__jarg(a, 1, "indent", tok__jv_none());
  jv seps = tok__jarg(a, 2, "separators", tok__jv_none());
  jv sk = tok__jarg(a, 3, "sort_keys", tok__jv_bool(false));
  /* transformers' tojson(x, ensure_ascii=False, indent=None, separators=None,
   * sort_keys=False): a positional argument is ensure_ascii, not jinja2's indent */
  o.ensure_ascii = tok__jv_truthy(ea);
  o.sort_keys = tok__jv_truthy(sk);
  char spaces[64];
  if (indent.t == JV_INT) {
    int64_t k = indent.u.i < 0 ? 0 : indent.u.i > 32 ? 32 : indent.u.i;
    memset(spaces, ' ', (size_t)k);
    o.indent = spaces;
    o.indent_len = (size_t)k;
  } else if (indent.t == JV_STR) {
    o.indent = indent.u.s.p;
    o.indent_len = indent.u.s.n;
  } else if (indent.t != JV_NONE) {
    FAIL("tojson: indent must be an integer, a string or None");
  }
  if (seps.t == JV_LIST && seps.u.l->n == 2 && seps.u.l->v[0].t == JV_STR && seps.u.l->v[1].t == JV_STR) {
    o.item_sep = seps.u.l->v[0].u.s.p;
    o.item_sep_len = seps.u.l->v[0].u.s.n;
    o.key_sep = seps.u.l->v[1].u.s.p;
    o.key_sep_len = seps.u.l->v[1].u.s.n;
  } else if (seps.t == JV_NONE) {
    o.item_sep = o.indent ? "," : ", ";
    o.item_sep_len = strlen(o.item_sep);
    o.key_sep = ": ";
    o.key_sep_len = 2;
  } else {
    FAIL("tojson: separators must be a pair of strings");
  }
  jdivert *d = tok__jr_divert_begin(r);
  tok__jv_json_out(r, r->out, v, &o, 0);
  return tok__jr_divert_end(r, d);
}

/* jinja2's title filter (not str.title): words begin after '-', whitespace, '(', '{',
 * '[' or '<'; a word's first character is upper-cased and the rest lower-cased. */
static jv jinja_title(jrender *r, jv s)
{
  char *o = tok__jr_alloc(r, s.u.s.n * 2 + 4);
  size_t n = 0;
  bool at_start = true;
  for (size_t i = 0; i < s.u.s.n;) {
    int32_t c = tok__jv_next_cp(s.u.s.p, s.u.s.n, &i);
    bool sep = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || tok__jv_py_space(c);
    int32_t m = sep ? c : at_start ? utf8proc_toupper(c) : utf8proc_tolower(c);
    at_start = sep;
    n += (size_t)utf8proc_encode_char(m, (utf8proc_uint8_t *)o + n);
  }
  o[n] = 0;
  return tok__jv_str(o, n);
}

/* int(d): false for NaN (Python's ValueError: the filter's default); infinity and values
 * past int64 are errors (Python raises OverflowError for one and has the big int for the
 * other, where tokd has none) */
static bool float_to_int(jrender *r, double d, jv *out)
{
  if (isnan(d)) return false;
  if (isinf(d)) FAIL("cannot convert float infinity to integer");
  if (fabs(d) >= 9.2e18) FAIL("integer overflow");
  *out = tok__jv_int((int64_t)d);
  return true;
}

/* The number a str holds for jinja2's float and int filters: float(s), or int(s, base)
 * and failing that int(float(s)), read with strtod and strtoll (Python's whitespace around
 * it is allowed). false where it holds none: the filter gives its default. */
static bool str_number(jrender *r, jv s, bool want_int, int base, jv *out)
{
  char tmp[64];
  jv t = tok__py_strip(s, tok__jv_none(), true, true);
  if (!t.u.s.n || t.u.s.n >= sizeof tmp) return false;
  memcpy(tmp, t.u.s.p, t.u.s.n);
  tmp[t.u.s.n] = 0;
  char *end;
  if (want_int) {
    errno = 0;
    long long x = strtoll(tmp, &end, base);
    if (*end == 0 && !errno) {
      *out = tok__jv_int(x);
      return true;
    }
  }
  double d = strtod(tmp, &end);
  if (*end) return false;
  if (want_int) return float_to_int(r, d, out);
  *out = tok__jv_float(d);
  return true;
}

/* jinja2's batch (items in lists of size, the last filled up with fill when given) and
 * slice (items in n lists of nearly equal length, the shorter ones filled up) */
static jv batch_filter(jrender *r, jv v, int64_t size, jv fill)
{
  const jlist *l = tok__jv_iterate(r, v);
  jvec out = {0}, cur = {0};
  for (size_t i = 0; i < l->n; i++) {
    tok__jr_step(r, 1);
    if ((int64_t)cur.n == size) {
      tok__jvec_push(r, &out, tok__jv_list_from(r, cur.v, cur.n));
      cur = (jvec){0};
    }
    tok__jvec_push(r, &cur, l->v[i]);
  }
  if (cur.n) {
    if (fill.t != JV_NONE && fill.t != JV_UNDEF)
      while ((int64_t)cur.n < size) {
        tok__jr_step(r, 1);
        tok__jvec_push(r, &cur, fill);
      }
    tok__jvec_push(r, &out, tok__jv_list_from(r, cur.v, cur.n));
  }
  return as_gen(tok__jv_list_from(r, out.v, out.n));
}

static jv slice_filter(jrender *r, jv v, int64_t n, jv fill)
{
  const jlist *l = tok__jv_iterate(r, v);
  if (n == 0) FAIL("integer division or modulo by zero");
  jvec out = {0};
  int64_t len = (int64_t)l->n, per = len / n, extra = len % n, offset = 0;
  for (int64_t k = 0; k < n; k++) { /* n < 0: none, as range(n) */
    tok__jr_step(r, 1);
    int64_t start = offset + k * per;
    if (k < extra) offset++;
    int64_t end = offset + (k + 1) * per;
    jvec part = {0};
    for (int64_t i = start; i < end; i++) tok__jvec_push(r, &part, l->v[i]);
    if (fill.t != JV_NONE && fill.t != JV_UNDEF && k >= extra) tok__jvec_push(r, &part, fill);
    tok__jvec_push(r, &out, tok__jv_list_from(r, part.v, part.n));
  }
  return as_gen(tok__jv_list_from(r, out.v, out.n));
}

/* str.center(width): the padding split evenly, the odd space on the left when width is
 * odd (CPython's rule) */
static jv center_filter(jrender *r, jv s, int64_t width)
{
  int64_t len = (int64_t)tok__jv_str_chars(s.u.s.p, s.u.s.n);
  if (width <= len) return s;
  if ((uint64_t)(width - len) > (r->out->limit ? r->out->limit : (1u << 24)))
    tok__jr_fail(r, TOK_ELIMIT, "center: string longer than the output limit");
  tok__jr_step(r, (uint64_t)(width - len) / 64);
  size_t pad = (size_t)(width - len), left = pad / 2 + (pad & (size_t)width & 1);
  char *o = tok__jr_alloc(r, s.u.s.n + pad + 1);
  memset(o, ' ', left);
  memcpy(o + left, s.u.s.p, s.u.s.n);
  memset(o + left + s.u.s.n, ' ', pad - left);
  o[s.u.s.n + pad] = 0;
  return tok__jv_keep_markup(s, tok__jv_str(o, s.u.s.n + pad));
}

/* jinja2's truncate: s itself when it is at most length + leeway characters, else cut to
 * length - len(end) characters (at the last space before, unless killwords) and end added */
static jv truncate_filter(jrender *r, jv s, const jargs *a)
{
  int64_t length = tok__jarg_int(r, tok__jarg(a, 0, "length", tok__jv_int(255)), "truncate");
  bool killwords = tok__jv_truthy(tok__jarg(a, 1, "killwords", tok__jv_bool(false)));
  jv end = tok__jv_need_str(r, tok__jarg(a, 2, "end", tok__jv_str("...", 3)), "truncate");
  jv lw = tok__jarg(a, 3, "leeway", tok__jv_none());
  int64_t leeway = lw.t == JV_NONE ? 5 : tok__jarg_int(r, lw, "truncate"); /* jinja2's truncate.leeway policy */
  int64_t end_len = (int64_t)tok__jv_str_chars(end.u.s.p, end.u.s.n);
  if (length < end_len) FAIL("expected length >= %lld, got %lld", (long long)end_len, (long long)length);
  if (leeway < 0) FAIL("expected leeway >= 0, got %lld", (long long)leeway);
  int64_t len = (int64_t)tok__jv_str_chars(s.u.s.p, s.u.s.n);
  if (len <= length || len - length <= leeway) return s; /* len <= length + leeway, without overflow */
  jv head = tok__jv_slice(r, s, tok__jv_none(), tok__jv_int(length - end_len), tok__jv_none());
  if (!killwords) { /* rsplit(" ", 1)[0] */
    const char *sp = head.u.s.n ? memrchr(head.u.s.p, ' ', head.u.s.n) : NULL;
    if (sp) head.u.s.n = (size_t)(sp - head.u.s.p);
  }
  head = tok__jv_keep_markup(s, head);
  return tok__jv_binop(r, OP_ADD, head, end); /* Markup + str escapes end */
}

/* jinja2's filesizeformat: bytes in decimal (kB, MB, ...) or binary (KiB, MiB, ...)
 * units with one decimal */
static jv filesize_filter(jrender *r, jv v, bool binary)
{
  double bytes;
  jv x;
  if (v.t == JV_INT || v.t == JV_BOOL) bytes = (double)tok__jv_ival(v);
  else if (v.t == JV_FLOAT) bytes = v.u.f;
  else if (v.t == JV_STR && str_number(r, v, false, 10, &x)) bytes = x.u.f;
  else FAIL("filesizeformat: could not convert %s to float", tok__jv_type_name(v));
  static const char *const dec[] = {"kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"};
  static const char *const bin[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"};
  double base = binary ? 1024 : 1000;
  /* Python compares the float with the exact int base**k: a long double holds 1000**9
   * (5**27 < 2**64) and 1024**9 exactly, a double does not (1e24 < 1000**8 in Python) */
  long double unit = base;
  char tmp[400];
  if (bytes == 1) return tok__jv_str("1 Byte", 6);
  if (bytes < base) {
    if (!isfinite(bytes)) FAIL("cannot convert float %s to integer", isnan(bytes) ? "NaN" : "infinity");
    /* int(bytes): past 2**53 a double is a whole number, which %.0f prints exactly */
    if (fabs(bytes) < 9.2e18) snprintf(tmp, sizeof tmp, "%lld Bytes", (long long)bytes);
    else snprintf(tmp, sizeof tmp, "%.0f Bytes", bytes);
    return tok__jv_str_copy(r, tmp, strlen(tmp));
  }
  size_t i = 0;
  for (; i < 8; i++) {
    unit *= base;
    if ((long double)bytes < unit) break;
  }
  if (i == 8) i = 7; /* past YB: still YB, of base^9 as jinja2 divides */
  snprintf(tmp, sizeof tmp, "%.1f %s", base * bytes / (double)unit, (binary ? bin : dec)[i]);
  return tok__jv_str_copy(r, tmp, strlen(tmp));
}

/* urllib.parse.quote of str(v) as UTF-8: letters, digits and _.-~ (and / unless for a
 * query string) kept, every other byte %XX; in a query string spaces become + */
static void url_quote_out(jrender *r, jv v, bool for_qs)
{
  jv s = tok__jv_to_str(r, v);
  for (size_t i = 0; i < s.u.s.n; i++) {
    unsigned char c = (unsigned char)s.u.s.p[i];
    char tmp[4];
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
        c == '.' || c == '-' || c == '~' || (c == '/' && !for_qs)) {
      tmp[0] = (char)c, tmp[1] = 0;
    } else if (c == ' ' && for_qs) {
      tmp[0] = '+', tmp[1] = 0;
    } else {
      snprintf(tmp, sizeof tmp, "%%%02X", c);
    }
    tok__jr_buf_puts(r, r->out, tmp);
  }
}

/* jinja2's urlencode: a str (or a value that is not iterable) quoted; a mapping or a
 * sequence of pairs as a query string k=v&... */
static jv urlencode_filter(jrender *r, jv v)
{
  jdivert *d = tok__jr_divert_begin(r);
  if (v.t == JV_STR || v.t == JV_NONE || v.t == JV_BOOL || v.t == JV_INT || v.t == JV_FLOAT) {
    url_quote_out(r, v, false);
  } else if (v.t == JV_DICT) {
    for (size_t i = 0; i < v.u.d->n; i++) {
      tok__jr_step(r, 1);
      if (i) tok__jr_buf_puts(r, r->out, "&");
      url_quote_out(r, v.u.d->k[i], true);
      tok__jr_buf_puts(r, r->out, "=");
      url_quote_out(r, v.u.d->v[i], true);
    }
  } else {
    const jlist *l = tok__jv_iterate(r, v);
    for (size_t i = 0; i < l->n; i++) {
      tok__jr_step(r, 1);
      jv pair = l->v[i];
      if (pair.t != JV_LIST || pair.tuple == JV_GEN || pair.u.l->n != 2)
        FAIL("urlencode: expected pairs (key, value), got %s", tok__jv_type_name(pair));
      if (i) tok__jr_buf_puts(r, r->out, "&");
      url_quote_out(r, pair.u.l->v[0], true);
      tok__jr_buf_puts(r, r->out, "=");
      url_quote_out(r, pair.u.l->v[1], true);
    }
  }
  return tok__jr_divert_end(r, d);
}

/* jinja2's xmlattr: ' key="value"' for each item whose value is not None or undefined,
 * both escaped; a key with whitespace, '/', '>' or '=' is an error */
static jv xmlattr_filter(jrender *r, jv v, bool autospace)
{
  if (v.t != JV_DICT) FAIL("'%s' object has no attribute 'items'", tok__jv_type_name(v));
  jdivert *d = tok__jr_divert_begin(r);
  bool first = true;
  for (size_t i = 0; i < v.u.d->n; i++) {
    tok__jr_step(r, 1);
    jv k = v.u.d->k[i], x = v.u.d->v[i];
    if (x.t == JV_NONE || x.t == JV_UNDEF) continue;
    jv ks = tok__jv_to_str(r, k);
    for (size_t j = 0; j < ks.u.s.n; j++)
      if (strchr(" \t\n\r\f\v/>=", ks.u.s.p[j]) && ks.u.s.p[j])
        FAIL("Invalid character in attribute name: '%.*s'", (int)(ks.u.s.n > 60 ? 60 : ks.u.s.n), ks.u.s.p);
    if (!first || autospace) tok__jr_buf_puts(r, r->out, " ");
    first = false;
    tok__jv_str_out(r, r->out, tok__markup_escape(r, k));
    tok__jr_buf_puts(r, r->out, "=\"");
    tok__jv_str_out(r, r->out, tok__markup_escape(r, x));
    tok__jr_buf_puts(r, r->out, "\"");
  }
  return tok__jr_divert_end(r, d);
}

/* jinja2's groupby: the items sorted by the attribute (stable; strings compared lowered
 * unless case_sensitive), then runs of equal keys as (grouper, list) tuples, which also
 * answer to .grouper and .list; the grouper is the first item's own value */
static jv groupby_filter(jrender *r, jv v, const jargs *a)
{
  jv attr = tok__jarg(a, 0, "attribute", tok__jv_undef("groupby needs an attribute"));
  if (attr.t == JV_UNDEF) tok__jr_fail_undef(r, attr);
  jv def = tok__jarg(a, 1, "default", tok__jv_none());
  bool case_sensitive = tok__jv_truthy(tok__jarg(a, 2, "case_sensitive", tok__jv_bool(false)));
  jv items = to_list(r, v);
  size_t n = items.u.l->n;
  sort_items(r, items.u.l->v, n, false, case_sensitive, attr, def, -1);
  jvec out = {0};
  for (size_t i = 0; i < n;) {
    jv key = sort_key(r, items.u.l->v[i], attr, def, -1, case_sensitive);
    size_t j = i + 1;
    for (; j < n; j++) {
      tok__jr_step(r, 1);
      if (!tok__jv_eq(r, sort_key(r, items.u.l->v[j], attr, def, -1, case_sensitive), key)) break;
    }
    jv group = tok__jv_list_new(r, 2);
    group.tuple = 1;
    group.u.l->group = true;
    group.u.l->v[0] = case_sensitive ? key : attr_path_or(r, items.u.l->v[i], attr, def);
    group.u.l->v[1] = tok__jv_list_from(r, items.u.l->v + i, j - i);
    tok__jvec_push(r, &out, group);
    i = j;
  }
  return tok__jv_list_from(r, out.v, out.n);
}

/* ---- wordwrap: Python's textwrap.wrap as jinja2's do_wordwrap calls it --------------
 * (expand_tabs and replace_whitespace off, drop_whitespace on), line by line. Lengths are
 * in code points. The chunks are textwrap's wordsep_re.split (break_on_hyphens) or runs of
 * whitespace and of the rest: whitespace there is ASCII's, but a chunk is dropped at a
 * line's ends when str.strip() empties it (Unicode's). */
static bool tw_space(int32_t c)
{
  return c == '\t' || c == '\n' || c == 0x0b || c == 0x0c || c == '\r' || c == ' ';
}

static bool tw_word(int32_t c) /* Python's \w on a str */
{
  utf8proc_category_t k = utf8proc_category(c);
  return c == '_' || (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) ||
         (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO);
}

static bool tw_letter(int32_t c) /* [^\d\W] */
{
  return tw_word(c) && utf8proc_category(c) != UTF8PROC_CATEGORY_ND;
}

static bool tw_punct(int32_t c) /* [\w!"'&.,?] */
{
  return tw_word(c) || c == '!' || c == '"' || c == '\'' || c == '&' || c == '.' || c == ',' || c == '?';
}

/* true when c[k..] is "--" or more hyphens and then a \w */
static bool tw_dashes(const int32_t *c, size_t n, size_t k)
{
  size_t j = k;
  while (j < n && c[j] == '-') j++;
  return j - k >= 2 && j < n && tw_word(c[j]);
}

/* The end of the chunk that starts at c[i] (wordsep_re's three alternatives in order; a
 * word ends at the first place one of its endings fits, the regex being lazy) */
static size_t tw_chunk_end(const int32_t *c, size_t n, size_t i, bool hyphens)
{
  if (tw_space(c[i])) {
    while (i < n && tw_space(c[i])) i++;
    return i;
  }
  if (!hyphens) {
    while (i < n && !tw_space(c[i])) i++;
    return i;
  }
  if (i > 0 && tw_punct(c[i - 1]) && tw_dashes(c, n, i)) { /* an em-dash between words */
    while (c[i] == '-') i++;
    return i;
  }
  for (size_t k = i + 1;; k++) {
    if (k < n && c[k] == '-') { /* a hyphen inside a word: after letter-letter or letter-hyphen-letter */
      bool behind = (k >= 2 && tw_letter(c[k - 2]) && tw_letter(c[k - 1])) ||
                    (k >= 3 && tw_letter(c[k - 3]) && c[k - 2] == '-' && tw_letter(c[k - 1]));
      bool ahead = k + 2 < n && tw_letter(c[k + 1]) &&
                   (tw_letter(c[k + 2]) || (c[k + 2] == '-' && k + 3 < n && tw_letter(c[k + 3])));
      if (behind && ahead) return k + 1;
    }
    if (k >= n || tw_space(c[k])) return k;
    if (tw_punct(c[k - 1]) && tw_dashes(c, n, k)) return k;
  }
}

typedef struct tw_chunk {
  size_t s, e; /* code points */
} tw_chunk;

typedef struct tw_text {
  const char *p;
  const size_t *off; /* the byte offset of each code point, and of the end */
} tw_text;

static bool tw_blank(tw_text t, tw_chunk k) /* chunk.strip() == '' */
{
  return tok__py_strip(tok__jv_str(t.p + t.off[k.s], t.off[k.e] - t.off[k.s]), tok__jv_none(), true, true).u.s.n == 0;
}

/* textwrap's _wrap_chunks, the lines written to r->out with wrapstring between them */
static void tw_wrap(jrender *r, tw_text t, tw_chunk *ch, size_t n_ch, int64_t width, bool break_long, bool hyphens,
                    jv wrapstring)
{
  size_t at = 0, n_lines = 0;
  tw_chunk *line = tok__jr_alloc(r, (n_ch + 1) * sizeof *line);
  while (at < n_ch) {
    tok__jr_step(r, 1);
    size_t n = 0;
    int64_t len = 0;
    if (n_lines && tw_blank(t, ch[at])) at++; /* a line does not begin with whitespace */
    while (at < n_ch && len + (int64_t)(ch[at].e - ch[at].s) <= width) {
      len += (int64_t)(ch[at].e - ch[at].s);
      line[n++] = ch[at++];
    }
    if (at < n_ch && (int64_t)(ch[at].e - ch[at].s) > width) { /* _handle_long_word */
      int64_t space_left = width < 1 ? 1 : width - len;
      if (break_long) {
        size_t end = (size_t)space_left;
        tw_chunk k = ch[at];
        if (hyphens && k.e - k.s > end) { /* after the last hyphen that follows a non-hyphen */
          size_t hyphen = 0;
          for (size_t q = end; q-- > 1;)
            if (t.p[t.off[k.s + q]] == '-') {
              hyphen = q;
              break;
            }
          bool other = false;
          for (size_t q = 0; q < hyphen && !other; q++) other = t.p[t.off[k.s + q]] != '-';
          if (hyphen > 0 && other) end = hyphen + 1;
        }
        line[n++] = (tw_chunk){k.s, k.s + end};
        ch[at].s += end;
      } else if (!n) {
        line[n++] = ch[at++];
      }
    }
    if (n && tw_blank(t, line[n - 1])) n--; /* nor ends with it */
    if (n) {
      if (n_lines++) tok__jr_buf_put(r, r->out, wrapstring.u.s.p, wrapstring.u.s.n);
      for (size_t q = 0; q < n; q++)
        tok__jr_buf_put(r, r->out, t.p + t.off[line[q].s], t.off[line[q].e] - t.off[line[q].s]);
    }
  }
}

static jv wordwrap_filter(jrender *r, jv s, const jargs *a)
{
  int64_t width = tok__jarg_int(r, tok__jarg(a, 0, "width", tok__jv_int(79)), "wordwrap");
  bool break_long = tok__jv_truthy(tok__jarg(a, 1, "break_long_words", tok__jv_bool(true)));
  jv wrapstring = tok__jarg(a, 2, "wrapstring", tok__jv_none());
  bool hyphens = tok__jv_truthy(tok__jarg(a, 3, "break_on_hyphens", tok__jv_bool(true)));
  if (wrapstring.t == JV_NONE) wrapstring = tok__jv_str("\n", 1); /* the environment's newline_sequence */
  wrapstring = tok__jv_need_str(r, wrapstring, "wordwrap");
  if (width <= 0) FAIL("invalid width %lld (must be > 0)", (long long)width);
  jv lines = tok__py_splitlines(r, s, false);
  jdivert *d = tok__jr_divert_begin(r);
  for (size_t i = 0; i < lines.u.l->n; i++) {
    jv line = lines.u.l->v[i];
    if (i) tok__jr_buf_put(r, r->out, wrapstring.u.s.p, wrapstring.u.s.n);
    size_t n = tok__jv_str_chars(line.u.s.p, line.u.s.n);
    int32_t *c = tok__jr_alloc(r, (n + 1) * sizeof *c);
    size_t *off = tok__jr_alloc(r, (n + 1) * sizeof *off);
    for (size_t k = 0, b = 0; k < n; k++) {
      off[k] = b;
      c[k] = tok__jv_next_cp(line.u.s.p, line.u.s.n, &b);
    }
    off[n] = line.u.s.n;
    tw_chunk *ch = tok__jr_alloc(r, (n + 1) * sizeof *ch);
    size_t n_ch = 0;
    for (size_t k = 0; k < n; n_ch++) {
      tok__jr_step(r, 1);
      size_t e = tw_chunk_end(c, n, k, hyphens);
      ch[n_ch] = (tw_chunk){k, e};
      k = e;
    }
    tw_wrap(r, (tw_text){line.u.s.p, off}, ch, n_ch, width, break_long, hyphens, wrapstring);
  }
  return tok__jr_divert_end(r, d);
}

jv tok__jr_filter(jrender *r, int id, jv v, const jargs *a)
{
  if (v.t == JV_STR) { /* by the bytes read: a lookup per code point for case and words */
    bool per_char = id == F_upper || id == F_lower || id == F_title || id == F_capitalize ||
                    id == F_wordcount || id == F_indent;
    tok__jr_step(r, per_char ? v.u.s.n : v.u.s.n / 64);
  }
  switch (id) {
  case F_abs:
    if (v.t == JV_BOOL) return tok__jv_int(v.u.b);
    if (v.t == JV_INT && v.u.i == INT64_MIN) FAIL("integer overflow");
    if (v.t == JV_INT) return tok__jv_int(v.u.i < 0 ? -v.u.i : v.u.i);
    if (v.t == JV_FLOAT) return tok__jv_float(fabs(v.u.f));
    FAIL("bad operand type for abs(): '%s'", tok__jv_type_name(v));
  case F_capitalize: return tok__jv_keep_markup(v, tok__py_case(r, tok__jv_to_str(r, v), PY_CAPITALIZE));
  case F_count: case F_length: return tok__jv_int(tok__jv_length(r, v));
  case F_d: case F_default: {
    jv def = tok__jarg(a, 0, "default_value", tok__jv_str("", 0));
    bool boolean = tok__jv_truthy(tok__jarg(a, 1, "boolean", tok__jv_bool(false)));
    if (v.t == JV_UNDEF || (boolean && !tok__jv_truthy(v))) return def;
    return v;
  }
  case F_first: {
    const jlist *l = tok__jv_iterate(r, v);
    return l->n ? l->v[0] : tok__jv_undef("No first item, sequence was empty.");
  }
  case F_last: {
    if (v.t == JV_LIST && v.tuple == JV_GEN) FAIL("'generator' object is not reversible");
    if (v.t != JV_LIST && v.t != JV_STR) v = to_list(r, v);
    const jlist *l = tok__jv_iterate(r, v);
    return l->n ? l->v[l->n - 1] : tok__jv_undef("No last item, sequence was empty.");
  }
  case F_float: {
    if (v.t == JV_UNDEF) tok__jr_fail_undef(r, v); /* float(Undefined) raises in jinja2 */
    jv def = tok__jarg(a, 0, "default", tok__jv_float(0)), x;
    if (v.t == JV_FLOAT) return v;
    if (v.t == JV_INT) return tok__jv_float((double)v.u.i);
    if (v.t == JV_BOOL) return tok__jv_float(v.u.b);
    if (v.t == JV_STR && str_number(r, v, false, 10, &x)) return x;
    return def;
  }
  case F_int: {
    if (v.t == JV_UNDEF) tok__jr_fail_undef(r, v);
    jv def = tok__jarg(a, 0, "default", tok__jv_int(0)), x;
    int64_t base = tok__jarg_int(r, tok__jarg(a, 1, "base", tok__jv_int(10)), "int");
    if (v.t == JV_INT) return v;
    if (v.t == JV_BOOL) return tok__jv_int(v.u.b);
    if (v.t == JV_FLOAT && float_to_int(r, v.u.f, &x)) return x;
    if (v.t == JV_STR && str_number(r, v, true, (int)base, &x)) return x;
    return def;
  }
  case F_indent: {
    jv width = tok__jarg(a, 0, "width", tok__jv_int(4));
    bool first = tok__jv_truthy(tok__jarg(a, 1, "first", tok__jv_bool(false)));
    bool blank = tok__jv_truthy(tok__jarg(a, 2, "blank", tok__jv_bool(false)));
    jv ind;
    if (width.t == JV_STR) ind = width;
    else {
      int64_t w = tok__jarg_int(r, width, "indent");
      if (w < 0) w = 0;
      if (w > 1024) FAIL("indent: width too large");
      char *sp = tok__jr_alloc(r, (size_t)w + 1);
      memset(sp, ' ', (size_t)w);
      ind = tok__jv_str(sp, (size_t)w);
    }
    if (v.t == JV_UNDEF) tok__jr_fail_undef(r, v);
    if (v.t != JV_STR) FAIL("indent: expected a string, got %s", tok__jv_type_name(v)); /* jinja2 fails too */
    jv s = v;
    jv nl = tok__jv_str("\n", 1);
    jv lines = tok__py_splitlines(r, tok__jv_str_cat(r, s, nl), false);
    jdivert *d = tok__jr_divert_begin(r);
    const jlist *l = lines.u.l;
    if (blank) {
      for (size_t i = 0; i < l->n; i++) {
        if (i) {
          tok__jr_buf_puts(r, r->out, "\n");
          tok__jr_buf_put(r, r->out, ind.u.s.p, ind.u.s.n);
        }
        tok__jv_str_out(r, r->out, l->v[i]);
      }
    } else {
      for (size_t i = 0; i < l->n; i++) {
        if (i) {
          tok__jr_buf_puts(r, r->out, "\n");
          if (l->v[i].u.s.n) tok__jr_buf_put(r, r->out, ind.u.s.p, ind.u.s.n);
        }
        tok__jv_str_out(r, r->out, l->v[i]);
      }
    }
    jv body = tok__jr_divert_end(r, d);
    return first ? tok__jv_str_cat(r, ind, body) : body;
  }
  case F_items: {
    if (v.t == JV_UNDEF) return as_gen(tok__jv_list_new(r, 0));
    if (v.t != JV_DICT) FAIL("items: expected a mapping, got %s", tok__jv_type_name(v));
    jv out = tok__jv_list_new(r, v.u.d->n);
    for (size_t i = 0; i < v.u.d->n; i++) {
      jv pair = tok__jv_list_new(r, 2);
      pair.tuple = 1;
      pair.u.l->v[0] = v.u.d->k[i];
      pair.u.l->v[1] = v.u.d->v[i];
      out.u.l->v[i] = pair;
    }
    return as_gen(out);
  }
  case F_join: {
    jv sep = tok__jarg(a, 0, "d", tok__jv_str("", 0));
    sep = tok__jv_to_str(r, sep);
    jv attr = tok__jarg(a, 1, "attribute", tok__jv_none());
    const jlist *l = tok__jv_iterate(r, v);
    if (attr.t != JV_NONE) {
      jv m = tok__jv_list_new(r, l->n);
      for (size_t i = 0; i < l->n; i++) m.u.l->v[i] = attr_path(r, l->v[i], attr);
      l = m.u.l;
    }
    return tok__py_join(r, l->v, l->n, sep);
  }
  case F_list: return to_list(r, v);
  case F_lower: return tok__jv_keep_markup(v, tok__py_case(r, tok__jv_to_str(r, v), PY_LOWER));
  case F_upper: return tok__jv_keep_markup(v, tok__py_case(r, tok__jv_to_str(r, v), PY_UPPER));
  case F_title: return jinja_title(r, tok__jv_to_str(r, v));
  case F_map: {
    if (!tok__jv_truthy(v)) return as_gen(tok__jv_list_new(r, 0)); /* jinja2's do_map: `if value:` */
    const jlist *l = tok__jv_iterate(r, v);
    jv out = tok__jv_list_new(r, l->n);
    jv attr = tok__jarg(a, 99, "attribute", tok__jv_none());
    if (attr.t != JV_NONE) {
      jv def = tok__jarg(a, 99, "default", tok__jv_undef(NULL));
      for (size_t i = 0; i < l->n; i++) {
        jv x = attr_path(r, l->v[i], attr);
        out.u.l->v[i] = x.t == JV_UNDEF && def.t != JV_UNDEF ? def : x;
      }
      return as_gen(out);
    }
    if (!a->n_pos) FAIL("map: needs a filter name or attribute=");
    jv name = tok__jv_need_str(r, a->pos[0], "map");
    int fid = tok__jinja_filter_id(name.u.s.p, name.u.s.n);
    if (fid < 0) FAIL("map: no filter named '%.*s'", (int)(name.u.s.n > 60 ? 60 : name.u.s.n), name.u.s.p);
    jargs fa = {0};
    for (size_t i = 1; i < a->n_pos; i++) fa.pos[fa.n_pos++] = a->pos[i];
    for (size_t i = 0; i < l->n; i++) {
      tok__jr_step(r, 1);
      out.u.l->v[i] = tok__jr_filter(r, fid, l->v[i], &fa);
    }
    return as_gen(out);
  }
  case F_max: case F_min: {
    const jlist *l = tok__jv_iterate(r, v);
    if (!l->n) return tok__jv_undef("No aggregated item, sequence was empty.");
    /* jinja2's do_min/do_max(value, case_sensitive=False, attribute=None): keyed like sort */
    bool case_sensitive = tok__jv_truthy(tok__jarg(a, 0, "case_sensitive", tok__jv_bool(false)));
    jv attr = tok__jarg(a, 1, "attribute", tok__jv_none());
    jv best = l->v[0], best_key = sort_key(r, best, attr, tok__jv_none(), -1, case_sensitive);
    for (size_t i = 1; i < l->n; i++) {
      tok__jr_step(r, 1);
      jv key = sort_key(r, l->v[i], attr, tok__jv_none(), -1, case_sensitive);
      int c = tok__jv_cmp(r, key, best_key);
      if (id == F_max ? c > 0 : c < 0) best = l->v[i], best_key = key; /* the first of equals */
    }
    return best;
  }
  case F_select: return select_like(r, v, a, false, true);
  case F_reject: return select_like(r, v, a, false, false);
  case F_selectattr: return select_like(r, v, a, true, true);
  case F_rejectattr: return select_like(r, v, a, true, false);
  case F_replace: {
    jv s = tok__jv_to_str(r, v);
    int64_t count = tok__jarg_int(r, tok__jarg(a, 2, "count", tok__jv_int(-1)), "replace");
    return tok__py_replace(r, s, tok__jarg(a, 0, "old", tok__jv_undef("replace needs old")),
                      tok__jarg(a, 1, "new", tok__jv_undef("replace needs new")), count);
  }
  case F_reverse: {
    if (v.t == JV_STR) return tok__jv_slice(r, v, tok__jv_none(), tok__jv_none(), tok__jv_int(-1));
    bool reversible = v.t == JV_LIST && v.tuple != JV_GEN; /* reversed(): an iterator */
    jv l = to_list(r, v);
    for (size_t i = 0, j = l.u.l->n; i + 1 < j; i++, j--) {
      jv t = l.u.l->v[i];
      l.u.l->v[i] = l.u.l->v[j - 1];
      l.u.l->v[j - 1] = t;
    }
    return reversible ? as_gen(l) : l; /* else list(value) reversed: a list */
  }
  case F_round: {
    int64_t prec = tok__jarg_int(r, tok__jarg(a, 0, "precision", tok__jv_int(0)), "round");
    jv method = tok__jarg(a, 1, "method", tok__jv_str("common", 6));
    bool common = !(method.t == JV_STR && ((method.u.s.n == 4 && !memcmp(method.u.s.p, "ceil", 4)) ||
                                           (method.u.s.n == 5 && !memcmp(method.u.s.p, "floor", 5))));
    /* round(int, n >= 0) is the int itself in Python */
    if (common && (v.t == JV_INT || v.t == JV_BOOL) && prec >= 0) return tok__jv_int(tok__jv_ival(v));
    if (v.t != JV_INT && v.t != JV_FLOAT && v.t != JV_BOOL) FAIL("type %s doesn't define __round__ method", tok__jv_type_name(v));
    double x = v.t == JV_FLOAT ? v.u.f : (double)tok__jv_ival(v);
    double m = pow(10, (double)prec);
    double y;
    if (method.t == JV_STR && method.u.s.n == 4 && !memcmp(method.u.s.p, "ceil", 4)) y = ceil(x * m) / m;
    else if (method.t == JV_STR && method.u.s.n == 5 && !memcmp(method.u.s.p, "floor", 5)) y = floor(x * m) / m;
    else { /* Python's round(): correctly rounded on the exact binary value, as printf does */
      char tmp[400];
      snprintf(tmp, sizeof tmp, "%.*f", (int)(prec < 0 ? 0 : prec > 30 ? 30 : prec), x);
      y = prec < 0 ? nearbyint(x * m) / m : strtod(tmp, NULL);
    }
    return tok__jv_float(y);
  }
  case F_string: return tok__jv_to_str(r, v); /* soft_str: a Markup stays Markup */
  case F_safe: {
    jv s = tok__jv_to_str(r, v);
    s.tuple = JV_MARKUP;
    return s;
  }
  case F_e: case F_escape: return tok__markup_escape(r, v);
  case F_forceescape: {
    if (v.t == JV_STR) v.tuple = 0;
    return tok__markup_escape(r, v);
  }
  case F_format: {
    /* jinja2's do_format: soft_str(value) % (kwargs or jargs) */
    if (a->n_pos && a->n_kw) FAIL("can't handle positional and keyword arguments at the same time");
    jv argv;
    if (a->n_kw) {
      jdict *d = tok__jd_new(r, a->n_kw);
      for (size_t k = 0; k < a->n_kw; k++)
        tok__jd_set(r, d, tok__jv_str(a->kw_names[k], strlen(a->kw_names[k])), a->kw[k]);
      argv = (jv){.t = JV_DICT, .u.d = d};
    } else {
      argv = tok__jv_list_from(r, a->pos, a->n_pos);
      argv.tuple = 1;
    }
    return tok__py_percent(r, tok__jv_to_str(r, v), argv);
  }
  case F_sum: {
    const jlist *l = tok__jv_iterate(r, v);
    jv attr = tok__jarg(a, 0, "attribute", tok__jv_none());
    jv acc = tok__jarg(a, 1, "start", tok__jv_int(0));
    /* Python's sum(): start + x0 + x1 ..., each + as the operator (numbers, lists, tuples) */
    if (acc.t == JV_STR) FAIL("sum() can't sum strings [use ''.join(seq) instead]");
    if (acc.t == JV_BOOL) acc = tok__jv_int(acc.u.b);
    for (size_t i = 0; i < l->n; i++) {
      tok__jr_step(r, 1);
      jv x = attr.t != JV_NONE ? attr_path(r, l->v[i], attr) : l->v[i];
      acc = tok__jv_binop(r, OP_ADD, acc, x);
    }
    return acc;
  }
  case F_tojson: return json_filter(r, v, a);
  case F_groupby: return groupby_filter(r, v, a);
  case F_wordwrap: return wordwrap_filter(r, tok__jv_need_str(r, v, "wordwrap"), a);
  case F_attr: {
    jv name = tok__jv_need_str(r, tok__jarg(a, 0, "name", tok__jv_undef("attr needs a name")), "attr");
    return tok__jv_attr(r, v, name.u.s.p, name.u.s.n);
  }
  case F_batch: case F_slice: {
    int64_t n = tok__jarg_int(r, tok__jarg(a, 0, id == F_batch ? "linecount" : "slices", tok__jv_undef(NULL)), id == F_batch ? "batch" : "slice");
    jv fill = tok__jarg(a, 1, "fill_with", tok__jv_none());
    return id == F_batch ? batch_filter(r, v, n, fill) : slice_filter(r, v, n, fill);
  }
  case F_center: return center_filter(r, tok__jv_to_str(r, v), tok__jarg_int(r, tok__jarg(a, 0, "width", tok__jv_int(80)), "center"));
  case F_filesizeformat: return filesize_filter(r, v, tok__jv_truthy(tok__jarg(a, 0, "binary", tok__jv_bool(false))));
  case F_truncate: return truncate_filter(r, tok__jv_need_str(r, v, "truncate"), a);
  case F_urlencode: return urlencode_filter(r, v);
  case F_xmlattr: return xmlattr_filter(r, v, tok__jv_truthy(tok__jarg(a, 0, "autospace", tok__jv_bool(true))));
  case F_trim: {
    jv s = tok__jv_to_str(r, v);
    jv chars = tok__jarg(a, 0, "chars", tok__jv_none());
    return tok__jv_keep_markup(v, tok__py_strip(s, chars, true, true));
  }
  case F_unique: { /* jinja2's do_unique(value, case_sensitive=False, attribute=None) */
    const jlist *l = tok__jv_iterate(r, v);
    bool case_sensitive = tok__jv_truthy(tok__jarg(a, 0, "case_sensitive", tok__jv_bool(false)));
    jv attr = tok__jarg(a, 1, "attribute", tok__jv_none());
    jvec out = {0}, keys = {0};
    for (size_t i = 0; i < l->n; i++) {
      jv key = sort_key(r, l->v[i], attr, tok__jv_none(), -1, case_sensitive);
      bool seen = false;
      for (size_t k = 0; k < keys.n && !seen; k++) {
        tok__jr_step(r, 1);
        seen = tok__jv_eq(r, keys.v[k], key);
      }
      if (seen) continue;
      tok__jvec_push(r, &keys, key);
      tok__jvec_push(r, &out, l->v[i]);
    }
    return as_gen(tok__jv_list_from(r, out.v, out.n));
  }
  case F_wordcount: {
    jv parts = tok__py_split(r, tok__jv_to_str(r, v), tok__jv_none(), -1, false);
    return tok__jv_int((int64_t)parts.u.l->n);
  }
  case F_dictsort: {
    if (v.t != JV_DICT) FAIL("dictsort: expected a mapping");
    bool by_value = false;
    jv by = tok__jarg(a, 1, "by", tok__jv_str("key", 3));
    if (by.t == JV_STR && by.u.s.n == 5 && !memcmp(by.u.s.p, "value", 5)) by_value = true;
    jargs none = {0};
    jv items = tok__jr_filter(r, F_items, v, &none);
    items.tuple = 0; /* sorted(): a list */
    sort_items(r, items.u.l->v, items.u.l->n, tok__jv_truthy(tok__jarg(a, 2, "reverse", tok__jv_bool(false))),
               tok__jv_truthy(tok__jarg(a, 0, "case_sensitive", tok__jv_bool(false))), tok__jv_none(),
               tok__jv_none(), by_value);
    return items;
  }
  case F_sort: {
    jv l = to_list(r, v);
    jv attr = tok__jarg(a, 2, "attribute", tok__jv_none());
    if (attr.t == JV_STR && memchr(attr.u.s.p, ',', attr.u.s.n)) { /* "a,b": keyed by both */
      jv parts = tok__py_split(r, attr, tok__jv_str(",", 1), -1, false);
      attr = parts;
    }
    sort_items(r, l.u.l->v, l.u.l->n, tok__jv_truthy(tok__jarg(a, 0, "reverse", tok__jv_bool(false))),
               tok__jv_truthy(tok__jarg(a, 1, "case_sensitive", tok__jv_bool(false))), attr,
               tok__jv_none(), -1);
    return l;
  }
  }
  FAIL("filter not implemented");
}
