/*
 * jvalue.c — the chat engine's values with Python's semantics: the render arena, str() and
 * repr() as Python prints them, equality and ordering, truthiness, and JSON in (the
 * conversation) and out (transformers' tojson: json.dumps with ensure_ascii=False).
 *
 * Output must be byte-identical to Python's, so the details follow CPython: floats print
 * as the shortest string that reads back (repr), in fixed notation for exponents -4..15;
 * repr() of a string picks single quotes unless the string holds one and no double quote,
 * and escapes what str.isprintable() rejects.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "chat/jinja_int.h"
#include "common/json_str.h"

/* ---- arena ------------------------------------------------------------------------ */
void *tok__ja_alloc_raw(jarena *a, size_t n)
{
  n = (n + 15) & ~(size_t)15;
  if (a->head && a->head->cap - a->head->used >= n) {
    void *p = a->head->data + a->head->used;
    a->head->used += n;
    return p;
  }
  size_t cap = n > 32768 ? n : 32768;
  if (a->limit && (cap > a->limit || a->total > a->limit - cap)) return NULL;
  jchunk *c;
  if (cap == 32768 && a->spare) { /* loops release and refill a chunk per iteration */
    c = a->spare;
    a->spare = NULL;
  } else {
    c = malloc(sizeof *c + cap);
    if (!c) return NULL;
  }
  c->next = a->head;
  c->cap = cap;
  c->used = n;
  a->head = c;
  a->total += cap;
  if (a->total > a->peak) a->peak = a->total;
  return c->data;
}

void tok__ja_free(jarena *a)
{
  for (jchunk *c = a->head, *next; c; c = next) {
    next = c->next;
    free(c);
  }
  free(a->spare);
  a->spare = NULL;
  a->head = NULL;
  a->total = 0;
}

jmark tok__ja_mark(const jarena *a)
{
  return (jmark){a->head, a->head ? a->head->used : 0, a->total};
}

size_t tok__ja_bytes_since(const jarena *a, jmark m)
{
  return a->head == m.head ? (a->head ? a->head->used - m.used : 0) : a->total - m.total;
}

/* Allocation only ever takes from the head chunk, so everything since m is the chunks
 * newer than m.head plus m.head's tail. */
void tok__ja_release(jarena *a, jmark m)
{
  while (a->head != m.head) {
    jchunk *c = a->head;
    a->head = c->next;
    a->total -= c->cap;
    if (c->cap == 32768 && !a->spare) a->spare = c;
    else free(c);
  }
  if (a->head) a->head->used = m.used;
}

void *tok__ja_grow(jarena *a, const void *old, size_t n, size_t cap, size_t size)
{
  void *p = tok__ja_alloc_raw(a, cap * size);
  if (p && n) memcpy(p, old, n * size);
  return p;
}

bool tok__ja_since(const jarena *a, jmark m, const void *p)
{
  uintptr_t x = (uintptr_t)p;
  for (const jchunk *c = a->head; c; c = c->next) {
    uintptr_t b = (uintptr_t)c->data;
    bool in = x >= b && x < b + c->cap;
    if (c == m.head) return in && x >= b + m.used;
    if (in) return true;
  }
  return false;
}

/* Copies a message into an error's detail as valid UTF-8 (it may quote template or
 * conversation bytes cut anywhere), truncated at a character boundary. */
void tok__jv_detail_set(char *dst, size_t cap, const char *src)
{
  tok_buf b = {.limit = cap * 3};
  size_t n = strlen(src);
  if (tok_utf8_append_lossy(&b, src, n) != TOK_OK || !b.data) {
    snprintf(dst, cap, "%s", "chat template error");
    tok_buf_free(&b);
    return;
  }
  size_t len = b.len < cap - 1 ? b.len : cap - 1;
  len = tok_utf8_complete_len(b.data, len);
  memcpy(dst, b.data, len);
  dst[len] = 0;
  tok_buf_free(&b);
}

_Noreturn void tok__jr_fail(jrender *r, tok_err code, const char *fmt, ...)
{
  if (r->err) {
    r->err->code = code;
    r->err->pos = TOK_NO_POS;
    r->err->index = TOK_NO_POS;
    char msg[sizeof r->err->detail];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tok__jv_detail_set(r->err->detail, sizeof r->err->detail, msg);
  }
  longjmp(r->exit, (int)code);
}

/* past the render's memory limit, or out of memory: one error for both */
_Noreturn static void jr_out_of_memory(jrender *r)
{
  tok__jr_fail(r, TOK_ELIMIT, "chat template render exceeds its memory limit (%zu bytes)", r->arena.limit);
}

void *tok__jr_alloc(jrender *r, size_t n)
{
  void *p = tok__ja_alloc_raw(&r->arena, n);
  if (!p) jr_out_of_memory(r);
  return p;
}

void *tok__jr_grow(jrender *r, const void *old, size_t n, size_t cap, size_t size)
{
  void *p = tok__ja_grow(&r->arena, old, n, cap, size);
  if (!p) jr_out_of_memory(r);
  return p;
}

uint64_t tok__chat_now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void tok__jr_step_check(jrender *r)
{
  if (r->steps > r->lim->max_steps)
    tok__jr_fail(r, TOK_ELIMIT, "chat template render exceeds its step limit (%llu)",
            (unsigned long long)r->lim->max_steps);
  /* the clock every 65,536 steps (~0.6 ms here): a deadline costs no time per step */
  if (r->deadline_ns && tok__chat_now_ns() > r->deadline_ns)
    tok__jr_fail(r, TOK_ELIMIT, "chat template render exceeds its time limit (%u ms)", r->lim->max_ms);
  uint64_t next = r->lim->max_steps == UINT64_MAX ? UINT64_MAX : r->lim->max_steps + 1;
  if (r->deadline_ns && (r->steps | 0xFFFF) + 1 < next) next = (r->steps | 0xFFFF) + 1;
  r->step_check = next;
}

void tok__jr_buf_put(jrender *r, tok_buf *b, const void *p, size_t n)
{
  tok__jr_step(r, n / 64); /* copying text: output, diverted strings, concatenations */
  tok_err rc = tok_buf_append(b, p, n);
  if (rc == TOK_ELIMIT)
    tok__jr_fail(r, TOK_ELIMIT, "rendered chat text exceeds its limit (%zu bytes)", b->limit);
  if (rc != TOK_OK) tok__jr_fail(r, rc, "out of memory while rendering");
}

/* ---- construction ----------------------------------------------------------------- */
jv tok__jv_none(void) { return (jv){.t = JV_NONE}; }
jv tok__jv_bool(bool b) { return (jv){.t = JV_BOOL, .u.b = b}; }
jv tok__jv_int(int64_t i) { return (jv){.t = JV_INT, .u.i = i}; }
jv tok__jv_float(double f) { return (jv){.t = JV_FLOAT, .u.f = f}; }
jv tok__jv_str(const char *p, size_t n) { return (jv){.t = JV_STR, .u.s = {p, n}}; }

jv tok__jv_undef(const char *why)
{
  return (jv){.t = JV_UNDEF, .u.s = {why, why ? strlen(why) : 0}};
}

jv tok__jv_str_copy(jrender *r, const char *p, size_t n)
{
  char *c = tok__jr_alloc(r, n + 1);
  if (n) memcpy(c, p, n);
  c[n] = 0;
  return tok__jv_str(c, n);
}

jv tok__jv_list_new(jrender *r, size_t n)
{
  if (n > SIZE_MAX / sizeof(jv) / 2) tok__jr_fail(r, TOK_ELIMIT, "list too long");
  jlist *l = tok__jr_alloc(r, sizeof *l);
  l->n = n;
  l->v = n ? tok__jr_alloc(r, n * sizeof(jv)) : NULL;
  l->group = false;
  return (jv){.t = JV_LIST, .u.l = l};
}

jdict *tok__jd_new(jrender *r, size_t cap)
{
  jdict *d = tok__jr_alloc(r, sizeof *d);
  d->n = 0;
  d->cap = cap;
  d->k = cap ? tok__jr_alloc(r, cap * sizeof(jv)) : NULL;
  d->v = cap ? tok__jr_alloc(r, cap * sizeof(jv)) : NULL;
  return d;
}

const jv *tok__jd_get(jrender *r, const jdict *d, jv k)
{
  tok__jr_step(r, d->n / 16);
  if (k.t == JV_STR) return tok__jd_get_str(d, k.u.s.p, k.u.s.n); /* most lookups: no jv_eq */
  for (size_t i = 0; i < d->n; i++)
    if (tok__jv_eq(r, d->k[i], k)) return &d->v[i];
  return NULL;
}

const jv *tok__jd_get_str(const jdict *d, const char *k, size_t n)
{
  for (size_t i = 0; i < d->n; i++)
    if (d->k[i].t == JV_STR && d->k[i].u.s.n == n && memcmp(d->k[i].u.s.p, k, n) == 0)
      return &d->v[i];
  return NULL;
}

/* Appends a key known to be new. */
static void tok__jd_push(jrender *r, jdict *d, jv k, jv v)
{
  if (d->n == d->cap) {
    size_t cap = d->cap ? d->cap * 2 : 8;
    d->k = tok__jr_grow(r, d->k, d->n, cap, sizeof(jv));
    d->v = tok__jr_grow(r, d->v, d->n, cap, sizeof(jv));
    d->cap = cap;
  }
  d->k[d->n] = k;
  d->v[d->n++] = v;
}

void tok__jd_set(jrender *r, jdict *d, jv k, jv v)
{
  const jv *old = tok__jd_get(r, d, k);
  if (old) { /* Python keeps the first position, the last value */
    d->v[old - d->v] = v;
    return;
  }
  tok__jd_push(r, d, k, v);
}

/* ---- Unicode helpers -------------------------------------------------------------- */
int32_t tok__jv_next_cp(const char *p, size_t n, size_t *i)
{
  utf8proc_int32_t c;
  utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)p + *i, (utf8proc_ssize_t)(n - *i), &c);
  if (k <= 0) { /* inputs are validated; be safe anyway */
    (*i)++;
    return 0xFFFD;
  }
  *i += (size_t)k;
  return c;
}

size_t tok__jv_str_chars(const char *p, size_t n)
{
  size_t c = 0;
  for (size_t i = 0; i < n; i++) c += ((unsigned char)p[i] & 0xC0) != 0x80;
  return c;
}

/* Python's str.isspace(): White_Space plus the bidi classes B, S, WS. */
bool tok__jv_py_space(int32_t c)
{
  if (c < 128) return (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x20);
  switch (c) {
  case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F:
  case 0x3000:
    return true;
  default:
    return c >= 0x2000 && c <= 0x200A;
  }
}

/* str.isprintable(): everything but categories Cc Cf Cs Co Cn Zl Zp Zs, space excepted. */
static bool py_printable(int32_t c)
{
  if (c == ' ') return true;
  switch (utf8proc_category(c)) {
  case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS:
  case UTF8PROC_CATEGORY_CO: case UTF8PROC_CATEGORY_CN: case UTF8PROC_CATEGORY_ZL:
  case UTF8PROC_CATEGORY_ZP: case UTF8PROC_CATEGORY_ZS:
    return false;
  default:
    return true;
  }
}

/* ---- Python semantics ------------------------------------------------------------- */
bool tok__jv_truthy(jv v)
{
  switch (v.t) {
  case JV_UNDEF: case JV_NONE: return false;
  case JV_BOOL: return v.u.b;
  case JV_INT: return v.u.i != 0;
  case JV_FLOAT: return v.u.f != 0;
  case JV_STR: return v.u.s.n != 0;
  case JV_LIST: return v.tuple == JV_GEN || v.u.l->n != 0;
  case JV_DICT: return v.u.d->n != 0;
  default: return true;
  }
}

const char *tok__jv_type_name(jv v)
{
  switch (v.t) {
  case JV_UNDEF: return "Undefined";
  case JV_NONE: return "NoneType";
  case JV_BOOL: return "bool";
  case JV_INT: return "int";
  case JV_FLOAT: return "float";
  case JV_STR: return "str";
  case JV_LIST: return v.tuple == JV_GEN ? "generator" : v.tuple ? "tuple" : "list";
  case JV_DICT: return "dict";
  case JV_NS: return "Namespace";
  case JV_LOOP: return "LoopContext";
  default: return "function";
  }
}

static bool is_num(jv v) { return v.t == JV_BOOL || v.t == JV_INT || v.t == JV_FLOAT; }
static double num_f(jv v)
{
  return v.t == JV_FLOAT ? v.u.f : v.t == JV_INT ? (double)v.u.i : (double)v.u.b;
}
static int64_t num_i(jv v) { return v.t == JV_INT ? v.u.i : (int64_t)v.u.b; }

bool tok__jv_eq(jrender *r, jv a, jv b)
{
  if (is_num(a) && is_num(b)) {
    if (a.t == JV_FLOAT || b.t == JV_FLOAT) return num_f(a) == num_f(b);
    return num_i(a) == num_i(b);
  }
  if (a.t != b.t) return false;
  switch (a.t) {
  case JV_UNDEF: case JV_NONE: return true;
  case JV_STR: return a.u.s.n == b.u.s.n && memcmp(a.u.s.p, b.u.s.p, a.u.s.n) == 0;
  case JV_LIST:
    if (a.tuple != b.tuple || a.u.l->n != b.u.l->n) return false;
    tok__jr_step(r, 1);
    for (size_t i = 0; i < a.u.l->n; i++)
      if (!tok__jv_eq(r, a.u.l->v[i], b.u.l->v[i])) return false;
    return true;
  case JV_DICT:
    if (a.u.d->n != b.u.d->n) return false;
    tok__jr_step(r, 1);
    for (size_t i = 0; i < a.u.d->n; i++) {
      const jv *o = tok__jd_get(r, b.u.d, a.u.d->k[i]);
      if (!o || !tok__jv_eq(r, a.u.d->v[i], *o)) return false;
    }
    return true;
  case JV_NS: return a.u.d == b.u.d;
  case JV_FUNC: return a.u.fn == b.u.fn;
  default: return false;
  }
}

int tok__jv_cmp(jrender *r, jv a, jv b)
{
  if (is_num(a) && is_num(b)) {
    if (a.t == JV_FLOAT || b.t == JV_FLOAT) {
      double x = num_f(a), y = num_f(b);
      return x < y ? -1 : x > y;
    }
    int64_t x = num_i(a), y = num_i(b);
    return x < y ? -1 : x > y;
  }
  if (a.t == JV_STR && b.t == JV_STR) { /* code point order is UTF-8 byte order */
    size_t n = a.u.s.n < b.u.s.n ? a.u.s.n : b.u.s.n;
    int c = n ? memcmp(a.u.s.p, b.u.s.p, n) : 0;
    if (c) return c < 0 ? -1 : 1;
    return a.u.s.n < b.u.s.n ? -1 : a.u.s.n > b.u.s.n;
  }
  if (a.t == JV_LIST && b.t == JV_LIST && a.tuple == b.tuple) {
    size_t n = a.u.l->n < b.u.l->n ? a.u.l->n : b.u.l->n;
    for (size_t i = 0; i < n; i++) {
      tok__jr_step(r, 1);
      if (!tok__jv_eq(r, a.u.l->v[i], b.u.l->v[i])) return tok__jv_cmp(r, a.u.l->v[i], b.u.l->v[i]);
    }
    return a.u.l->n < b.u.l->n ? -1 : a.u.l->n > b.u.l->n;
  }
  if (a.t == JV_UNDEF) tok__jr_fail(r, TOK_ERENDER, "%s", a.u.s.p ? a.u.s.p : "undefined value");
  if (b.t == JV_UNDEF) tok__jr_fail(r, TOK_ERENDER, "%s", b.u.s.p ? b.u.s.p : "undefined value");
  tok__jr_fail(r, TOK_ERENDER, "comparison not supported between instances of '%s' and '%s'",
          tok__jv_type_name(a), tok__jv_type_name(b));
}

/* Python's float repr: the shortest digits that read back, fixed notation when the
 * decimal exponent is in -4..15, else d.ddde+XX. */
void tok__jv_float_repr(char *buf, size_t cap, double f)
{
  if (isnan(f)) {
    snprintf(buf, cap, "nan");
    return;
  }
  if (isinf(f)) {
    snprintf(buf, cap, f < 0 ? "-inf" : "inf");
    return;
  }
  char e[40];
  int prec;
  for (prec = 1; prec <= 17; prec++) {
    snprintf(e, sizeof e, "%.*e", prec - 1, f);
    if (strtod(e, NULL) == f) break;
  }
  /* e = [-]d[.ddd]e[+-]XX */
  const char *p = e;
  bool neg = *p == '-';
  if (neg) p++;
  char digits[24];
  size_t nd = 0;
  for (; *p && *p != 'e'; p++)
    if (*p != '.') digits[nd++] = *p;
  int exp = atoi(p + 1);
  while (nd > 1 && digits[nd - 1] == '0') nd--;
  char *o = buf;
  size_t left = cap;
#define PUT(c) do { if (left > 1) { *o++ = (c); left--; } } while (0)
  if (neg) PUT('-');
  if (exp >= -4 && exp < 16) {
    if (exp < 0) {
      PUT('0');
      PUT('.');
      for (int i = -1; i > exp; i--) PUT('0');
      for (size_t i = 0; i < nd; i++) PUT(digits[i]);
    } else {
      for (int i = 0; i <= exp; i++) PUT((size_t)i < nd ? digits[i] : '0');
      PUT('.');
      if ((size_t)exp + 1 < nd)
        for (size_t i = (size_t)exp + 1; i < nd; i++) PUT(digits[i]);
      else
        PUT('0');
    }
  } else {
    PUT(digits[0]);
    if (nd > 1) {
      PUT('.');
      for (size_t i = 1; i < nd; i++) PUT(digits[i]);
    }
    char ex[16];
    snprintf(ex, sizeof ex, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    for (char *q = ex; *q; q++) PUT(*q);
  }
#undef PUT
  *o = 0;
}

/* How quoted_out writes a code point: NULL to copy it, else its escape (a constant, or
 * written into tmp). quote and ascii are what the escapes depend on. */
typedef const char *(*escape_fn)(int32_t c, char quote, bool ascii, char tmp[16]);

/* p[0, n) between two quote characters, each code point copied or escaped by esc; copied
 * runs are written at once (most text has nothing to escape). Python's repr() and
 * json.dumps differ only in their escapes. */
static void quoted_out(jrender *r, tok_buf *b, const char *p, size_t n, char quote, bool ascii,
                       escape_fn esc)
{
  tok__jr_buf_put(r, b, &quote, 1);
  size_t run = 0;
  for (size_t i = 0; i < n;) {
    size_t at = i;
    int32_t c = tok__jv_next_cp(p, n, &i);
    char tmp[16];
    const char *e = esc(c, quote, ascii, tmp);
    if (e) {
      tok__jr_buf_put(r, b, p + at - run, run);
      run = 0;
      tok__jr_buf_puts(r, b, e);
    } else {
      run += i - at;
    }
  }
  tok__jr_buf_put(r, b, p + n - run, run);
  tok__jr_buf_put(r, b, &quote, 1);
}

/* repr() of a str: the quote and backslash, \n \r \t, and \x, \u or \U for what
 * str.isprintable() rejects */
static const char *repr_escape(int32_t c, char quote, bool ascii, char tmp[16])
{
  (void)ascii;
  if (c == quote || c == '\\') {
    tmp[0] = '\\';
    tmp[1] = (char)c;
    tmp[2] = 0;
    return tmp;
  }
  if (c == '\n') return "\\n";
  if (c == '\r') return "\\r";
  if (c == '\t') return "\\t";
  if (c < 0x20 || c == 0x7f || (c >= 0x80 && !py_printable(c))) {
    if (c < 0x100) snprintf(tmp, 16, "\\x%02x", (unsigned)c);
    else if (c < 0x10000) snprintf(tmp, 16, "\\u%04x", (unsigned)c);
    else snprintf(tmp, 16, "\\U%08x", (unsigned)c);
    return tmp;
  }
  return NULL;
}

static void str_repr_out(jrender *r, tok_buf *b, const char *p, size_t n)
{
  bool has_sq = memchr(p, '\'', n) != NULL, has_dq = memchr(p, '"', n) != NULL;
  quoted_out(r, b, p, n, has_sq && !has_dq ? '"' : '\'', false, repr_escape);
}

static void seq_out(jrender *r, tok_buf *b, jv v)
{
  if (v.t == JV_LIST && v.tuple == JV_GEN)
    tok__jr_fail(r, TOK_ERENDER, "printing a generator (jinja2 prints its address, e.g. <generator "
                            "object ...>); add | list");
  if (v.t == JV_LIST) {
    tok__jr_buf_puts(r, b, v.tuple ? "(" : "[");
    for (size_t i = 0; i < v.u.l->n; i++) {
      if (i) tok__jr_buf_puts(r, b, ", ");
      tok__jv_repr_out(r, b, v.u.l->v[i]);
    }
    if (v.tuple && v.u.l->n == 1) tok__jr_buf_puts(r, b, ",");
    tok__jr_buf_puts(r, b, v.tuple ? ")" : "]");
  } else {
    tok__jr_buf_puts(r, b, "{");
    for (size_t i = 0; i < v.u.d->n; i++) {
      if (i) tok__jr_buf_puts(r, b, ", ");
      tok__jv_repr_out(r, b, v.u.d->k[i]);
      tok__jr_buf_puts(r, b, ": ");
      tok__jv_repr_out(r, b, v.u.d->v[i]);
    }
    tok__jr_buf_puts(r, b, "}");
  }
}

static void scalar_out(jrender *r, tok_buf *b, jv v)
{
  char tmp[64];
  switch (v.t) {
  case JV_UNDEF: return;
  case JV_NONE: tok__jr_buf_puts(r, b, "None"); return;
  case JV_BOOL: tok__jr_buf_puts(r, b, v.u.b ? "True" : "False"); return;
  case JV_INT: snprintf(tmp, sizeof tmp, "%lld", (long long)v.u.i); break;
  case JV_FLOAT: tok__jv_float_repr(tmp, sizeof tmp, v.u.f); break;
  case JV_NS: tok__jr_buf_puts(r, b, "<Namespace>"); return;
  case JV_LOOP: tok__jr_buf_puts(r, b, "<LoopContext>"); return;
  default: tok__jr_buf_puts(r, b, "<function>"); return;
  }
  tok__jr_buf_puts(r, b, tmp);
}

void tok__jv_repr_out(jrender *r, tok_buf *b, jv v)
{
  tok__jr_step(r, 1);
  if (v.t == JV_UNDEF) tok__jr_buf_puts(r, b, "Undefined"); /* repr(jinja2.Undefined()) */
  else if (v.t == JV_STR) str_repr_out(r, b, v.u.s.p, v.u.s.n);
  else if (v.t == JV_LIST || v.t == JV_DICT) seq_out(r, b, v);
  else scalar_out(r, b, v);
}

void tok__jv_str_out(jrender *r, tok_buf *b, jv v)
{
  if (v.t == JV_STR) tok__jr_buf_put(r, b, v.u.s.p, v.u.s.n);
  else if (v.t == JV_LIST || v.t == JV_DICT) seq_out(r, b, v);
  else scalar_out(r, b, v);
}

jdivert *tok__jr_divert_begin(jrender *r)
{
  jdivert *d = tok__jr_alloc(r, sizeof *d);
  memset(d, 0, sizeof *d);
  d->buf.limit = r->out->limit;
  d->saved = r->out;
  d->next = r->diverts;
  r->diverts = d;
  r->out = &d->buf;
  return d;
}

jv tok__jr_divert_end(jrender *r, jdivert *d)
{
  r->out = d->saved;
  r->diverts = d->next; /* diverts nest: d is the innermost */
  jv s = tok__jv_str_copy(r, d->buf.data ? d->buf.data : "", d->buf.len);
  tok_buf_free(&d->buf);
  return s;
}

void tok__jr_divert_free_all(jrender *r)
{
  for (jdivert *d = r->diverts; d; d = d->next) tok_buf_free(&d->buf);
  r->diverts = NULL;
}

jv tok__jv_to_str(jrender *r, jv v)
{
  if (v.t == JV_STR) return v;
  if (v.t == JV_UNDEF) return tok__jv_str("", 0);
  jdivert *d = tok__jr_divert_begin(r);
  tok__jv_str_out(r, r->out, v);
  return tok__jr_divert_end(r, d);
}

/* ---- JSON out (json.dumps) -------------------------------------------------------- */
/* json.dumps of a str: the quote and backslash, \n \r \t \b \f, \u for other control
 * characters and, with ensure_ascii, for all past ASCII (a surrogate pair past U+FFFF) */
static const char *json_escape(int32_t c, char quote, bool ascii, char tmp[16])
{
  (void)quote;
  switch (c) {
  case '"': return "\\\"";
  case '\\': return "\\\\";
  case '\n': return "\\n";
  case '\r': return "\\r";
  case '\t': return "\\t";
  case '\b': return "\\b";
  case '\f': return "\\f";
  }
  if (c >= 0x10000 && ascii) {
    int32_t v = c - 0x10000;
    snprintf(tmp, 16, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
    return tmp;
  }
  if (c < 0x20 || (c >= 0x80 && ascii)) {
    snprintf(tmp, 16, "\\u%04x", (unsigned)c);
    return tmp;
  }
  return NULL;
}

static void json_str_out(jrender *r, tok_buf *b, const char *p, size_t n, bool ascii)
{
  quoted_out(r, b, p, n, '"', ascii, json_escape);
}

static void json_newline(jrender *r, tok_buf *b, const jjson_opts *o, size_t level)
{
  tok__jr_buf_puts(r, b, "\n");
  for (size_t i = 0; i < level; i++) tok__jr_buf_put(r, b, o->indent, o->indent_len);
}

static void json_key_out(jrender *r, tok_buf *b, jv k, const jjson_opts *o)
{
  char tmp[64];
  switch (k.t) {
  case JV_STR: json_str_out(r, b, k.u.s.p, k.u.s.n, o->ensure_ascii); return;
  case JV_NONE: tok__jr_buf_puts(r, b, "\"null\""); return;
  case JV_BOOL: tok__jr_buf_puts(r, b, k.u.b ? "\"true\"" : "\"false\""); return;
  case JV_INT: snprintf(tmp, sizeof tmp, "\"%lld\"", (long long)k.u.i); break;
  case JV_FLOAT: tmp[0] = '"'; tok__jv_float_repr(tmp + 1, sizeof tmp - 2, k.u.f); strcat(tmp, "\""); break;
  default: tok__jr_fail(r, TOK_ERENDER, "keys must be str, int, float, bool or None, not %s", tok__jv_type_name(k));
  }
  tok__jr_buf_puts(r, b, tmp);
}

void tok__jv_json_out(jrender *r, tok_buf *b, jv v, const jjson_opts *o, size_t level)
{
  tok__jr_step(r, 1);
  if (level > 512) tok__jr_fail(r, TOK_ERENDER, "tojson: value nested too deeply");
  char tmp[64];
  switch (v.t) {
  case JV_NONE: tok__jr_buf_puts(r, b, "null"); return;
  case JV_BOOL: tok__jr_buf_puts(r, b, v.u.b ? "true" : "false"); return;
  case JV_INT: snprintf(tmp, sizeof tmp, "%lld", (long long)v.u.i); tok__jr_buf_puts(r, b, tmp); return;
  case JV_FLOAT:
    if (isnan(v.u.f)) tok__jr_buf_puts(r, b, "NaN");
    else if (isinf(v.u.f)) tok__jr_buf_puts(r, b, v.u.f < 0 ? "-Infinity" : "Infinity");
    else {
      tok__jv_float_repr(tmp, sizeof tmp, v.u.f);
      tok__jr_buf_puts(r, b, tmp);
    }
    return;
  case JV_STR: json_str_out(r, b, v.u.s.p, v.u.s.n, o->ensure_ascii); return;
  case JV_LIST:
    if (v.tuple == JV_GEN) tok__jr_fail(r, TOK_ERENDER, "Object of type generator is not JSON serializable");
    if (!v.u.l->n) {
      tok__jr_buf_puts(r, b, "[]");
      return;
    }
    tok__jr_buf_puts(r, b, "[");
    for (size_t i = 0; i < v.u.l->n; i++) {
      if (i) tok__jr_buf_put(r, b, o->item_sep, o->item_sep_len);
      if (o->indent) json_newline(r, b, o, level + 1);
      tok__jv_json_out(r, b, v.u.l->v[i], o, level + 1);
    }
    if (o->indent) json_newline(r, b, o, level);
    tok__jr_buf_puts(r, b, "]");
    return;
  case JV_DICT: {
    const jdict *d = v.u.d;
    if (!d->n) {
      tok__jr_buf_puts(r, b, "{}");
      return;
    }
    size_t *order = tok__jr_alloc(r, d->n * sizeof *order);
    for (size_t i = 0; i < d->n; i++) order[i] = i;
    if (o->sort_keys) { /* insertion sort: stable, keys are few; steps bound the rest */
      for (size_t i = 1; i < d->n; i++) {
        size_t x = order[i], j = i;
        while (j > 0 && tok__jv_cmp(r, d->k[order[j - 1]], d->k[x]) > 0) {
          order[j] = order[j - 1];
          j--;
          tok__jr_step(r, 1);
        }
        order[j] = x;
      }
    }
    tok__jr_buf_puts(r, b, "{");
    for (size_t i = 0; i < d->n; i++) {
      if (i) tok__jr_buf_put(r, b, o->item_sep, o->item_sep_len);
      if (o->indent) json_newline(r, b, o, level + 1);
      json_key_out(r, b, d->k[order[i]], o);
      tok__jr_buf_put(r, b, o->key_sep, o->key_sep_len);
      tok__jv_json_out(r, b, d->v[order[i]], o, level + 1);
    }
    if (o->indent) json_newline(r, b, o, level);
    tok__jr_buf_puts(r, b, "}");
    return;
  }
  default:
    tok__jr_fail(r, TOK_ERENDER, "Object of type %s is not JSON serializable", tok__jv_type_name(v));
  }
}

/* ---- JSON in ---------------------------------------------------------------------- */
typedef struct jin {
  jrender *r;
  const char *s, *what;
  size_t n, i;
  unsigned depth;
  bool utf8_ok; /* the whole text is valid UTF-8: strings need no check of their own */
} jin;

_Noreturn static void jin_fail(jin *j, const char *msg)
{
  tok__jr_fail(j->r, TOK_EINVAL, "%s: invalid JSON at byte %zu: %s", j->what, j->i, msg);
}

static void jin_ws(jin *j)
{
  while (j->i < j->n && (j->s[j->i] == ' ' || j->s[j->i] == '\t' || j->s[j->i] == '\n' ||
                         j->s[j->i] == '\r'))
    j->i++;
}

/* at j->s[j->i], the opening quote */
static jv jin_string(jin *j)
{
  const char *s = j->s + ++j->i, *end = j->s + j->n, *stop;
  bool plain;
  tok__jstr_err e = tok__jstr_scan(s, end, &stop, &plain);
  j->i = (size_t)(stop - j->s);
  if (e) jin_fail(j, tok__jstr_why(e));
  size_t len = (size_t)(stop - s);
  j->i++; /* the closing quote */
  if (!j->utf8_ok && !tok_utf8_valid(s, len, NULL)) jin_fail(j, "string is not valid UTF-8");
  if (plain) return tok__jv_str(s, len);
  char *o = tok__jr_alloc(j->r, len + 1); /* the decoded string is at most as long */
  size_t n;
  e = tok__jstr_decode(s, end, o, &n, &stop);
  if (e) {
    j->i = (size_t)(stop - j->s);
    jin_fail(j, tok__jstr_why(e));
  }
  o[n] = 0;
  return tok__jv_str(o, n);
}

static jv jin_value(jin *j);

static jv jin_number(jin *j)
{
  size_t start = j->i;
  bool is_float = false;
  if (j->s[j->i] == '-') j->i++;
  if (j->i >= j->n || j->s[j->i] < '0' || j->s[j->i] > '9') jin_fail(j, "bad number");
  if (j->s[j->i] == '0') j->i++;
  else while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9') j->i++;
  if (j->i < j->n && j->s[j->i] == '.') {
    is_float = true;
    j->i++;
    if (j->i >= j->n || j->s[j->i] < '0' || j->s[j->i] > '9') jin_fail(j, "bad number");
    while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9') j->i++;
  }
  if (j->i < j->n && (j->s[j->i] == 'e' || j->s[j->i] == 'E')) {
    is_float = true;
    j->i++;
    if (j->i < j->n && (j->s[j->i] == '+' || j->s[j->i] == '-')) j->i++;
    if (j->i >= j->n || j->s[j->i] < '0' || j->s[j->i] > '9') jin_fail(j, "bad number");
    while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9') j->i++;
  }
  char tmp[64];
  size_t len = j->i - start;
  if (len >= sizeof tmp) {
    if (!is_float) jin_fail(j, "integer out of range (64-bit)");
    char *big = tok__jr_alloc(j->r, len + 1);
    memcpy(big, j->s + start, len);
    big[len] = 0;
    return tok__jv_float(strtod(big, NULL));
  }
  memcpy(tmp, j->s + start, len);
  tmp[len] = 0;
  if (is_float) return tok__jv_float(strtod(tmp, NULL));
  errno = 0;
  long long v = strtoll(tmp, NULL, 10);
  if (errno) jin_fail(j, "integer out of range (64-bit)");
  return tok__jv_int(v);
}

static bool jin_word(jin *j, const char *w)
{
  size_t n = strlen(w);
  if (j->n - j->i >= n && memcmp(j->s + j->i, w, n) == 0) {
    j->i += n;
    return true;
  }
  return false;
}

static jv jin_value(jin *j)
{
  tok__jr_step(j->r, 1);
  jin_ws(j);
  if (j->i >= j->n) jin_fail(j, "unexpected end");
  char c = j->s[j->i];
  if (c == '"') return jin_string(j);
  if (c == '{' || c == '[') {
    if (++j->depth > 256) jin_fail(j, "nested too deeply");
    j->i++;
    jin_ws(j);
    jv out;
    if (c == '[') {
      size_t n = 0, cap = 8;
      jv *items = tok__jr_alloc(j->r, cap * sizeof(jv));
      if (j->i < j->n && j->s[j->i] == ']') j->i++;
      else
        for (;;) {
          jv x = jin_value(j);
          if (n == cap) {
            items = tok__jr_grow(j->r, items, n, 2 * cap, sizeof(jv));
            cap *= 2;
          }
          items[n++] = x;
          jin_ws(j);
          if (j->i < j->n && j->s[j->i] == ',') { j->i++; continue; }
          if (j->i < j->n && j->s[j->i] == ']') { j->i++; break; }
          jin_fail(j, "expected ',' or ']'");
        }
      out = tok__jv_list_new(j->r, 0);
      out.u.l->n = n;
      out.u.l->v = items;
    } else {
      jdict *d = tok__jd_new(j->r, 8);
      if (j->i < j->n && j->s[j->i] == '}') j->i++;
      else
        for (;;) {
          jin_ws(j);
          if (j->i >= j->n || j->s[j->i] != '"') jin_fail(j, "expected a string key");
          jv k = jin_string(j);
          jin_ws(j);
          if (j->i >= j->n || j->s[j->i] != ':') jin_fail(j, "expected ':'");
          j->i++;
          jv v = jin_value(j);
          /* duplicate keys: the last value wins (Python's json); the scan is bounded by steps */
          const jv *old = tok__jd_get_str(d, k.u.s.p, k.u.s.n);
          tok__jr_step(j->r, d->n / 16);
          if (old) *(jv *)old = v;
          else tok__jd_push(j->r, d, k, v);
          jin_ws(j);
          if (j->i < j->n && j->s[j->i] == ',') { j->i++; continue; }
          if (j->i < j->n && j->s[j->i] == '}') { j->i++; break; }
          jin_fail(j, "expected ',' or '}'");
        }
      out = (jv){.t = JV_DICT, .u.d = d};
    }
    j->depth--;
    return out;
  }
  if (jin_word(j, "true")) return tok__jv_bool(true);
  if (jin_word(j, "false")) return tok__jv_bool(false);
  if (jin_word(j, "null")) return tok__jv_none();
  if (c == '-' || (c >= '0' && c <= '9')) return jin_number(j);
  jin_fail(j, "unexpected character");
}

jv tok__jv_from_json(jrender *r, const char *s, size_t n, const char *what)
{
  /* one pass over the whole text (bytes outside strings are JSON's ASCII, so it is valid
   * iff every string is); else each string is checked, to name the one at fault */
  jin j = {.r = r, .s = s, .n = n, .what = what, .utf8_ok = tok_utf8_valid(s, n, NULL)};
  jv v = jin_value(&j);
  jin_ws(&j);
  if (j.i != n) jin_fail(&j, "trailing characters");
  return v;
}

/* ---- a request body's members ----------------------------------------------------- */
static bool span_bool(jin *j, jv v, const char *name)
{
  if (v.t != JV_BOOL) {
    tok__jr_fail(j->r, TOK_EINVAL, "%s: expected true or false", name);
  }
  return v.u.b;
}

tok_err tok_chat_request_from_body(const char *body, size_t len, tok_chat_request *req,
                                   bool *add_special_tokens, tok_error *err)
{
  tok_chat_limits lim = {.max_steps = 100000000};
  jrender *r = calloc(1, sizeof *r);
  if (!r) return TOK_ENOMEM;
  r->arena.limit = len * 8 + (1u << 20);
  r->err = err;
  r->lim = &lim;
  tok_buf dummy = {0};
  r->out = &dummy;
  volatile tok_err rc = TOK_OK;
  if (setjmp(r->exit)) {
    rc = err ? err->code : TOK_EINVAL;
    goto done;
  }
  req->add_generation_prompt = true;
  *add_special_tokens = false;
  jin j = {.r = r, .s = body, .n = len, .what = "request body"};
  jin_ws(&j);
  if (j.i >= j.n || body[j.i] != '{') tok__jr_fail(r, TOK_EINVAL, "request body: expected a JSON object");
  j.i++;
  jin_ws(&j);
  if (j.i < j.n && body[j.i] == '}') j.i++;
  else
    for (;;) {
      jin_ws(&j);
      if (j.i >= j.n || body[j.i] != '"') jin_fail(&j, "expected a string key");
      jv k = jin_string(&j);
      jin_ws(&j);
      if (j.i >= j.n || body[j.i] != ':') jin_fail(&j, "expected ':'");
      j.i++;
      jin_ws(&j);
      size_t start = j.i;
      jv v = jin_value(&j);
      const char *at = body + start;
      size_t n = j.i - start;
#define KEY(lit) (k.u.s.n == sizeof(lit) - 1 && !memcmp(k.u.s.p, lit, sizeof(lit) - 1))
      if (KEY("messages")) {
        req->messages_json = at;
        req->messages_len = n;
      } else if (KEY("tools")) {
        req->tools_json = v.t == JV_NONE ? NULL : at;
        req->tools_len = n;
      } else if (KEY("documents")) {
        req->documents_json = v.t == JV_NONE ? NULL : at;
        req->documents_len = n;
      } else if (KEY("chat_template_kwargs")) {
        req->kwargs_json = v.t == JV_NONE ? NULL : at;
        req->kwargs_len = n;
      } else if (KEY("add_generation_prompt")) {
        req->add_generation_prompt = span_bool(&j, v, "add_generation_prompt");
      } else if (KEY("continue_final_message")) {
        req->continue_final_message = span_bool(&j, v, "continue_final_message");
      } else if (KEY("add_special_tokens")) {
        *add_special_tokens = span_bool(&j, v, "add_special_tokens");
      }
#undef KEY
      jin_ws(&j);
      if (j.i < j.n && body[j.i] == ',') { j.i++; continue; }
      if (j.i < j.n && body[j.i] == '}') { j.i++; break; }
      jin_fail(&j, "expected ',' or '}'");
    }
  jin_ws(&j);
  if (j.i != j.n) jin_fail(&j, "trailing characters");
  if (!req->messages_json) tok__jr_fail(r, TOK_EINVAL, "messages: required");
done:
  tok__ja_free(&r->arena);
  free(r);
  return rc;
}
