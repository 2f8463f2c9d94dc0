/*
 * eval.c — the chat engine's evaluator: statements write to the render's output,
 * expressions give values. Here are the scopes, attribute and item access, slices, calls
 * (macros and the globals jinja2 and transformers provide: range, namespace, dict,
 * raise_exception, strftime_now), Python's operators, and the loop scopes that free each
 * iteration's memory; the filters and tests are in filters.c, the methods of str, dict and
 * list in pymethods.c.
 *
 * Every evaluation counts a step and every allocation comes from the render's capped arena
 * (jinja_int.h), so a template loop that never ends, a macro that recurses forever or a
 * value that doubles itself stops with TOK_ELIMIT instead of taking the process with it.
 * Errors follow jinja2's: a value that is undefined may be printed (as ""), tested and
 * iterated (as empty) but using it otherwise fails with jinja2's message for it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/jinja_int.h"

static jv eval(jrender *r, jframe *f, const jnode *n);
static void exec(jrender *r, jframe *f, const jnode *n);

_Noreturn void tok__jr_fail_undef(jrender *r, jv v)
{
  FAIL("%s", v.u.s.p ? v.u.s.p : "value is undefined");
}

static jv undef_fmt(jrender *r, const char *fmt, const char *a, const char *b)
{
  char tmp[400];
  snprintf(tmp, sizeof tmp, fmt, a, b);
  jv s = tok__jv_str_copy(r, tmp, strlen(tmp));
  return tok__jv_undef(s.u.s.p);
}

/* jinja2's object_type_repr */
static const char *obj_repr(jv v, char *buf, size_t cap)
{
  if (v.t == JV_NONE) return "'None'";
  snprintf(buf, cap, "'%s object'", tok__jv_type_name(v));
  return buf;
}

/* ---- scopes ----------------------------------------------------------------------- */
static jframe *frame_new(jrender *r, jframe *parent)
{
  jframe *f = tok__jr_alloc(r, sizeof *f);
  memset(f, 0, sizeof *f);
  f->parent = parent;
  return f;
}

void tok__jr_set(jrender *r, jframe *f, const char *name, jv v)
{
  for (size_t i = 0; i < f->n; i++)
    if (strcmp(f->names[i], name) == 0) {
      f->vals[i] = v;
      return;
    }
  if (f->n == f->cap) {
    size_t cap = f->cap ? 2 * f->cap : 8;
    f->names = tok__jr_grow(r, f->names, f->n, cap, sizeof *f->names);
    f->vals = tok__jr_grow(r, f->vals, f->n, cap, sizeof *f->vals);
    f->cap = cap;
  }
  f->names[f->n] = name;
  f->vals[f->n++] = v;
}

jv tok__jv_func(jrender *r, int id, jv self)
{
  jfunc *fn = tok__jr_alloc(r, sizeof *fn);
  fn->id = id;
  fn->self = self;
  fn->macro = NULL;
  fn->scope = NULL;
  return (jv){.t = JV_FUNC, .u.fn = fn};
}

static jv lookup(jrender *r, jframe *f, const char *name)
{
  for (; f; f = f->parent)
    for (size_t i = f->n; i-- > 0;) {
      const char *have = f->names[i]; /* the same node's name is the same pointer */
      if (have == name || (have[0] == name[0] && strcmp(have, name) == 0)) return f->vals[i];
    }
  static const struct { const char *name; int id; } globals[] = {
      {"range", B_RANGE}, {"namespace", B_NAMESPACE}, {"dict", B_DICT},
      {"raise_exception", B_RAISE}, {"strftime_now", B_STRFTIME}};
  for (size_t i = 0; i < sizeof globals / sizeof *globals; i++)
    if (strcmp(globals[i].name, name) == 0) return tok__jv_func(r, globals[i].id, tok__jv_none());
  return undef_fmt(r, "'%s' is undefined", name, "");
}

/* ---- strings ---------------------------------------------------------------------- */
jv tok__jv_str_cat(jrender *r, jv a, jv b)
{
  char *s = tok__jr_alloc(r, a.u.s.n + b.u.s.n + 1);
  memcpy(s, a.u.s.p, a.u.s.n);
  memcpy(s + a.u.s.n, b.u.s.p, b.u.s.n);
  s[a.u.s.n + b.u.s.n] = 0;
  return tok__jv_str(s, a.u.s.n + b.u.s.n);
}

jv tok__jv_need_str(jrender *r, jv v, const char *what)
{
  if (v.t == JV_UNDEF) tok__jr_fail_undef(r, v);
  if (v.t != JV_STR) FAIL("%s: expected a string, got %s", what, tok__jv_type_name(v));
  return v;
}

/* code point offsets -> byte offsets */
static size_t cp_to_byte(const char *p, size_t n, size_t cp)
{
  size_t i = 0;
  while (i < n && cp > 0) {
    i++;
    while (i < n && ((unsigned char)p[i] & 0xC0) == 0x80) i++;
    cp--;
  }
  return i;
}

/* ---- lists ------------------------------------------------------------------------ */
jv tok__jv_list_from(jrender *r, const jv *items, size_t n)
{
  jv l = tok__jv_list_new(r, n);
  if (n) memcpy(l.u.l->v, items, n * sizeof(jv));
  return l;
}

void tok__jvec_push(jrender *r, jvec *v, jv x)
{
  if (v->n == v->cap) {
    size_t cap = v->cap ? 2 * v->cap : 8;
    v->v = tok__jr_grow(r, v->v, v->n, cap, sizeof(jv));
    v->cap = cap;
  }
  v->v[v->n++] = x;
}

/* The strings parts[0..n) joined, within the output limit. */
jv tok__jv_str_concat(jrender *r, const jv *parts, size_t n)
{
  size_t total = 0;
  for (size_t k = 0; k < n; k++) {
    total += parts[k].u.s.n;
    if (r->out->limit && total > r->out->limit)
      tok__jr_fail(r, TOK_ELIMIT, "string longer than the output limit");
  }
  char *o = tok__jr_alloc(r, total + 1);
  size_t at = 0;
  for (size_t k = 0; k < n; k++) {
    memcpy(o + at, parts[k].u.s.p, parts[k].u.s.n);
    at += parts[k].u.s.n;
  }
  o[at] = 0;
  return tok__jv_str(o, at);
}

/* ---- iteration -------------------------------------------------------------------- */
static jv str_chars_list(jrender *r, jv s)
{
  jvec v = {0};
  for (size_t i = 0; i < s.u.s.n;) {
    size_t st = i;
    tok__jv_next_cp(s.u.s.p, s.u.s.n, &i);
    tok__jvec_push(r, &v, tok__jv_str(s.u.s.p + st, i - st));
  }
  return tok__jv_list_from(r, v.v, v.n);
}

/* The items a for loop or a filter sees: list items, dict keys, string characters. */
const jlist *tok__jv_iterate(jrender *r, jv v)
{
  static const jlist empty = {0, NULL, false};
  switch (v.t) {
  case JV_UNDEF: return &empty;
  case JV_LIST: return v.u.l;
  case JV_DICT: return tok__jv_list_from(r, v.u.d->k, v.u.d->n).u.l;
  case JV_STR: return str_chars_list(r, v).u.l;
  default: FAIL("'%s' object is not iterable", tok__jv_type_name(v));
  }
}

int64_t tok__jv_length(jrender *r, jv v)
{
  if (v.t == JV_LIST && v.tuple == JV_GEN) FAIL("object of type 'generator' has no len()");
  switch (v.t) {
  case JV_UNDEF: return 0;
  case JV_STR: return (int64_t)tok__jv_str_chars(v.u.s.p, v.u.s.n);
  case JV_LIST: return (int64_t)v.u.l->n;
  case JV_DICT: return (int64_t)v.u.d->n;
  default: FAIL("object of type '%s' has no len()", tok__jv_type_name(v));
  }
}

/* ---- attribute and item access ---------------------------------------------------- */
static jv loop_attr(jrender *r, const jloop *lp, const char *name)
{
  int64_t i = (int64_t)lp->i, n = (int64_t)lp->items->n;
  if (!strcmp(name, "index")) return tok__jv_int(i + 1);
  if (!strcmp(name, "index0")) return tok__jv_int(i);
  if (!strcmp(name, "revindex")) return tok__jv_int(n - i);
  if (!strcmp(name, "revindex0")) return tok__jv_int(n - i - 1);
  if (!strcmp(name, "first")) return tok__jv_bool(i == 0);
  if (!strcmp(name, "last")) return tok__jv_bool(i == n - 1);
  if (!strcmp(name, "length")) return tok__jv_int(n);
  if (!strcmp(name, "depth")) return tok__jv_int(1);
  if (!strcmp(name, "depth0")) return tok__jv_int(0);
  if (!strcmp(name, "previtem"))
    return i > 0 ? lp->items->v[i - 1] : tok__jv_undef("there is no previous item");
  if (!strcmp(name, "nextitem"))
    return i + 1 < n ? lp->items->v[i + 1] : tok__jv_undef("there is no next item");
  if (!strcmp(name, "cycle")) return tok__jv_func(r, B_CYCLE, tok__jv_int(i));
  return undef_fmt(r, "'LoopContext object' has no attribute '%s'%s", name, "");
}

/* obj.name. keys: a dict's keys count too (in a template obj.name falls back to
 * obj['name']); else a dict has only its methods (the attr filter). */
static jv getattr_v(jrender *r, jv obj, const char *name, size_t name_len, bool keys)
{
  char tb[64];
  switch (obj.t) {
  case JV_UNDEF: tok__jr_fail_undef(r, obj);
  case JV_DICT: {
    jv m = tok__py_method(r, obj, name, name_len); /* a method before a key, as jinja2's getattr */
    if (m.t == JV_FUNC) return m;
    if (!keys) break;
    const jv *v = tok__jd_get_str(obj.u.d, name, name_len);
    tok__jr_step(r, obj.u.d->n / 16);
    if (v) return *v;
    break;
  }
  case JV_NS: {
    const jv *v = tok__jd_get_str(obj.u.d, name, name_len);
    if (v) return *v;
    break;
  }
  case JV_LOOP: {
    char nm[32];
    if (name_len >= sizeof nm) break;
    memcpy(nm, name, name_len);
    nm[name_len] = 0;
    return loop_attr(r, obj.u.loop, nm);
  }
  case JV_STR:
  case JV_LIST: {
    if (obj.t == JV_LIST && obj.u.l->group) { /* groupby's named tuple */
      if (name_len == 7 && !memcmp(name, "grouper", 7)) return obj.u.l->v[0];
      if (name_len == 4 && !memcmp(name, "list", 4)) return obj.u.l->v[1];
    }
    jv m = tok__py_method(r, obj, name, name_len);
    if (m.t == JV_FUNC) return m;
    break;
  }
  default:
    break;
  }
  char nm[128];
  snprintf(nm, sizeof nm, "%.*s", (int)(name_len > 100 ? 100 : name_len), name);
  return undef_fmt(r, "%s has no attribute '%s'", obj_repr(obj, tb, sizeof tb), nm);
}

jv tok__jv_attr(jrender *r, jv obj, const char *name, size_t name_len)
{
  return getattr_v(r, obj, name, name_len, false);
}

jv tok__jv_getitem(jrender *r, jv obj, jv key)
{
  char tb[64];
  switch (obj.t) {
  case JV_UNDEF: tok__jr_fail_undef(r, obj);
  case JV_DICT: {
    const jv *v = tok__jd_get(r, obj.u.d, key);
    if (v) return *v;
    break;
  }
  case JV_LIST:
  case JV_STR:
    if (obj.t == JV_LIST && obj.tuple == JV_GEN) break; /* not subscriptable: undefined */
    if (key.t == JV_INT || key.t == JV_BOOL) {
      int64_t i = key.t == JV_INT ? key.u.i : key.u.b;
      int64_t n = obj.t == JV_LIST ? (int64_t)obj.u.l->n : (int64_t)tok__jv_str_chars(obj.u.s.p, obj.u.s.n);
      int64_t k = i < 0 ? i + n : i;
      if (k >= 0 && k < n) {
        if (obj.t == JV_LIST) return obj.u.l->v[k];
        size_t b = cp_to_byte(obj.u.s.p, obj.u.s.n, (size_t)k), e = b;
        tok__jv_next_cp(obj.u.s.p, obj.u.s.n, &e);
        return tok__jv_str(obj.u.s.p + b, e - b);
      }
      char num[32];
      snprintf(num, sizeof num, "%lld", (long long)i);
      return undef_fmt(r, "%s object has no element %s", tok__jv_type_name(obj), num);
    }
    break;
  default:
    break;
  }
  if (key.t == JV_STR) return getattr_v(r, obj, key.u.s.p, key.u.s.n, true);
  return undef_fmt(r, "%s has no element of type %s", obj_repr(obj, tb, sizeof tb), tok__jv_type_name(key));
}

static bool slice_index(jv v)
{
  return v.t == JV_NONE || v.t == JV_UNDEF || v.t == JV_INT || v.t == JV_BOOL;
}

static int64_t slice_bound(jv v, int64_t def)
{
  if (v.t == JV_INT) return v.u.i;
  if (v.t == JV_BOOL) return v.u.b;
  return def;
}

/* jinja2 compiles a slice to Python's own subscript: a type without one is a TypeError */
jv tok__jv_slice(jrender *r, jv obj, jv start_v, jv stop_v, jv step_v)
{
  if (obj.t == JV_UNDEF) tok__jr_fail_undef(r, obj);
  if (obj.t == JV_DICT) FAIL("unhashable type: 'slice'");
  if ((obj.t != JV_LIST && obj.t != JV_STR) || (obj.t == JV_LIST && obj.tuple == JV_GEN))
    FAIL("'%s' object is not subscriptable", tok__jv_type_name(obj));
  if (!slice_index(start_v) || !slice_index(stop_v) || !slice_index(step_v))
    FAIL("slice indices must be integers or None or have an __index__ method");
  int64_t step = slice_bound(step_v, 1);
  if (step == 0) FAIL("slice step cannot be zero");
  jv items = obj.t == JV_LIST ? obj : str_chars_list(r, obj);
  int64_t n = (int64_t)items.u.l->n;
  int64_t lo, hi;
  /* CPython's PySlice_AdjustIndices */
  int64_t start = slice_bound(start_v, step < 0 ? n - 1 : 0);
  int64_t stop = slice_bound(stop_v, step < 0 ? -n - 1 : n);
  if (start_v.t == JV_INT || start_v.t == JV_BOOL) {
    if (start < 0) start = start + n < 0 ? (step < 0 ? -1 : 0) : start + n;
    else if (start >= n) start = step < 0 ? n - 1 : n;
  }
  if (stop_v.t == JV_INT || stop_v.t == JV_BOOL) {
    if (stop < 0) stop = stop + n < 0 ? (step < 0 ? -1 : 0) : stop + n;
    else if (stop >= n) stop = step < 0 ? n - 1 : n;
  } else if (step < 0) {
    stop = -1;
  }
  lo = start;
  hi = stop;
  jvec out = {0};
  if (step > 0)
    for (int64_t i = lo; i < hi; i += step) tok__jvec_push(r, &out, items.u.l->v[i]);
  else
    for (int64_t i = lo; i > hi; i += step) tok__jvec_push(r, &out, items.u.l->v[i]);
  tok__jr_step(r, out.n / 8);
  if (obj.t == JV_LIST) {
    jv l = tok__jv_list_from(r, out.v, out.n);
    l.tuple = obj.tuple;
    return l;
  }
  return tok__jv_str_concat(r, out.v, out.n);
}

/* ---- arguments -------------------------------------------------------------------- */
static void eval_args(jrender *r, jframe *f, const jnode *n, jargs *a)
{
  memset(a, 0, sizeof *a);
  for (size_t i = 0; i < n->n_items; i++) {
    jv v = eval(r, f, n->items[i]);
    const char *kw = n->names ? n->names[i] : NULL;
    if (kw) {
      if (a->n_kw == 8) FAIL("too many keyword arguments");
      a->kw_names[a->n_kw] = kw;
      a->kw[a->n_kw++] = v;
    } else {
      if (a->n_pos == 8) FAIL("too many arguments");
      a->pos[a->n_pos++] = v;
    }
  }
}

/* positional i or keyword name, else def */
jv tok__jarg(const jargs *a, size_t i, const char *name, jv def)
{
  if (i < 8 && i < a->n_pos) return a->pos[i];
  for (size_t k = 0; k < a->n_kw; k++)
    if (name && strcmp(a->kw_names[k], name) == 0) return a->kw[k];
  return def;
}

int64_t tok__jarg_int(jrender *r, jv v, const char *what)
{
  if (v.t == JV_INT) return v.u.i;
  if (v.t == JV_BOOL) return v.u.b;
  FAIL("%s: expected an integer, got %s", what, tok__jv_type_name(v));
}

bool tok__jv_contains(jrender *r, jv hay, jv needle)
{
  switch (hay.t) {
  case JV_STR:
    needle = tok__jv_need_str(r, needle, "'in <string>'");
    tok__jr_step(r, hay.u.s.n / 64);
    return tok__find_bytes(hay.u.s.p, hay.u.s.n, needle.u.s.p, needle.u.s.n) != NULL;
  case JV_LIST:
    for (size_t i = 0; i < hay.u.l->n; i++) {
      tok__jr_step(r, 1);
      if (tok__jv_eq(r, hay.u.l->v[i], needle)) return true;
    }
    return false;
  case JV_DICT:
    if ((needle.t == JV_LIST && needle.tuple != 1) || needle.t == JV_DICT || needle.t == JV_NS)
      FAIL("unhashable type: '%s'", tok__jv_type_name(needle));
    return tok__jd_get(r, hay.u.d, needle) != NULL;
  case JV_UNDEF: return false;
  default: FAIL("argument of type '%s' is not iterable", tok__jv_type_name(hay));
  }
}

/* ---- calls ------------------------------------------------------------------------ */
static jv call_macro(jrender *r, const jnode *m, jframe *scope, const jargs *a)
{
  if (++r->depth > r->lim->max_depth)
    tok__jr_fail(r, TOK_ELIMIT, "chat template: macro calls nested deeper than the limit (%u)", r->lim->max_depth);
  jframe *f = frame_new(r, scope ? scope : r->globals);
  if (a->n_pos > m->n_items)
    FAIL("macro '%s' takes not more than %zu argument(s)", m->name, m->n_items);
  for (size_t i = 0; i < m->n_items; i++) {
    const char *pn = m->names[i];
    jv v;
    if (i < a->n_pos) v = a->pos[i];
    else {
      bool found = false;
      for (size_t k = 0; k < a->n_kw; k++)
        if (!strcmp(a->kw_names[k], pn)) {
          v = a->kw[k];
          found = true;
        }
      if (!found) v = m->items[i] ? eval(r, f, m->items[i]) : undef_fmt(r, "parameter '%s' was not provided", pn, "");
    }
    tok__jr_set(r, f, pn, v);
  }
  for (size_t k = 0; k < a->n_kw; k++) {
    bool known = false;
    for (size_t i = 0; i < m->n_items; i++) known |= !strcmp(a->kw_names[k], m->names[i]);
    if (!known) FAIL("macro '%s' takes no keyword argument '%s'", m->name, a->kw_names[k]);
  }
  jdivert *d = tok__jr_divert_begin(r);
  int saved_ctl = r->loop_ctl;
  exec(r, f, m->b);
  r->loop_ctl = saved_ctl;
  r->depth--;
  return tok__jr_divert_end(r, d);
}

static jv call(jrender *r, jv fn, const jargs *a)
{
  if (fn.t == JV_UNDEF) tok__jr_fail_undef(r, fn);
  if (fn.t != JV_FUNC) FAIL("'%s' object is not callable", tok__jv_type_name(fn));
  const jfunc *fx = fn.u.fn;
  if (fx->macro) return call_macro(r, fx->macro, fx->scope, a);
  switch (fx->id) {
  case B_RANGE: {
    int64_t start = 0, stop, step = 1;
    if (a->n_pos == 1) stop = tok__jarg_int(r, a->pos[0], "range");
    else if (a->n_pos >= 2) {
      start = tok__jarg_int(r, a->pos[0], "range");
      stop = tok__jarg_int(r, a->pos[1], "range");
      if (a->n_pos >= 3) step = tok__jarg_int(r, a->pos[2], "range");
    } else FAIL("range expected at least 1 argument");
    if (!step) FAIL("range() arg 3 must not be zero");
    jvec out = {0};
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      tok__jr_step(r, 1);
      tok__jvec_push(r, &out, tok__jv_int(i));
    }
    return tok__jv_list_from(r, out.v, out.n);
  }
  case B_NAMESPACE: case B_DICT: {
    jdict *d = tok__jd_new(r, 8);
    for (size_t i = 0; i < a->n_pos; i++) {
      if (a->pos[i].t != JV_DICT) FAIL("namespace()/dict(): positional argument must be a mapping");
      for (size_t k = 0; k < a->pos[i].u.d->n; k++) tok__jd_set(r, d, a->pos[i].u.d->k[k], a->pos[i].u.d->v[k]);
    }
    for (size_t k = 0; k < a->n_kw; k++)
      tok__jd_set(r, d, tok__jv_str(a->kw_names[k], strlen(a->kw_names[k])), a->kw[k]);
    return (jv){.t = fx->id == B_NAMESPACE ? JV_NS : JV_DICT, .u.d = d};
  }
  case B_RAISE: {
    jv msg = tok__jv_to_str(r, tok__jarg(a, 0, "message", tok__jv_str("", 0)));
    FAIL("%.*s", (int)(msg.u.s.n > 280 ? 280 : msg.u.s.n), msg.u.s.p);
  }
  case B_STRFTIME: {
    jv fmt = tok__jv_need_str(r, tok__jarg(a, 0, "format", tok__jv_undef("strftime_now needs a format")), "strftime_now");
    struct tm tm;
    localtime_r(&r->now, &tm);
    char fb[256], out[512];
    if (fmt.u.s.n >= sizeof fb) FAIL("strftime_now: format too long");
    memcpy(fb, fmt.u.s.p, fmt.u.s.n);
    fb[fmt.u.s.n] = 0;
    size_t n = strftime(out, sizeof out, fb, &tm);
    return tok__jv_str_copy(r, out, n);
  }
  case B_CYCLE: {
    if (!a->n_pos) FAIL("no items for cycling given");
    return a->pos[(size_t)fx->self.u.i % a->n_pos];
  }
  default:
    return tok__py_call_method(r, fx->id, fx->self, a);
  }
}

/* ---- operators -------------------------------------------------------------------- */
static bool numeric(jv v) { return v.t == JV_INT || v.t == JV_FLOAT || v.t == JV_BOOL; }
static double fval(jv v) { return v.t == JV_FLOAT ? v.u.f : v.t == JV_INT ? (double)v.u.i : v.u.b; }

static const char *op_sym(int op)
{
  static const char *const s[] = {"", "+", "-", "*", "/", "//", "%", "**"};
  return s[op];
}

jv tok__jv_binop(jrender *r, int op, jv a, jv b)
{
  if (a.t == JV_UNDEF) tok__jr_fail_undef(r, a);
  if (b.t == JV_UNDEF) tok__jr_fail_undef(r, b);
  if (numeric(a) && numeric(b)) {
    bool fl = a.t == JV_FLOAT || b.t == JV_FLOAT;
    if (!fl && op != OP_DIV) {
      int64_t x = tok__jv_ival(a), y = tok__jv_ival(b), z;
      switch (op) {
      case OP_ADD: if (__builtin_add_overflow(x, y, &z)) FAIL("integer overflow"); return tok__jv_int(z);
      case OP_SUB: if (__builtin_sub_overflow(x, y, &z)) FAIL("integer overflow"); return tok__jv_int(z);
      case OP_MUL: if (__builtin_mul_overflow(x, y, &z)) FAIL("integer overflow"); return tok__jv_int(z);
      case OP_FLOORDIV: case OP_MOD: {
        if (!y) FAIL("integer division or modulo by zero");
        if (x == INT64_MIN && y == -1) FAIL("integer overflow");
        int64_t q = x / y, m = x % y;
        if (m && ((m < 0) != (y < 0))) {
          q--;
          m += y;
        }
        return tok__jv_int(op == OP_FLOORDIV ? q : m);
      }
      case OP_POW:
        if (y < 0) return tok__jv_float(pow((double)x, (double)y));
        z = 1;
        for (int64_t k = 0; k < y; k++) {
          if (__builtin_mul_overflow(z, x, &z)) FAIL("integer overflow");
          tok__jr_step(r, 1);
          if (z == 0 || z == 1) break;
        }
        return tok__jv_int(z);
      }
    }
    double x = fval(a), y = fval(b);
    switch (op) {
    case OP_ADD: return tok__jv_float(x + y);
    case OP_SUB: return tok__jv_float(x - y);
    case OP_MUL: return tok__jv_float(x * y);
    case OP_DIV: if (y == 0) FAIL("division by zero"); return tok__jv_float(x / y);
    case OP_FLOORDIV: if (y == 0) FAIL("float floor division by zero"); return tok__jv_float(floor(x / y));
    case OP_MOD: {
      if (y == 0) FAIL("float modulo");
      double m = fmod(x, y);
      if (m && ((m < 0) != (y < 0))) m += y;
      return tok__jv_float(m);
    }
    case OP_POW: return tok__jv_float(pow(x, y));
    }
  }
  if (op == OP_ADD && a.t == JV_STR && b.t == JV_STR) {
    if (a.tuple == JV_MARKUP || b.tuple == JV_MARKUP) { /* Markup.__add__/__radd__ escape the other */
      jv s = tok__jv_str_cat(r, tok__markup_escape(r, a), tok__markup_escape(r, b));
      s.tuple = JV_MARKUP;
      return s;
    }
    if (r->out->limit && a.u.s.n + b.u.s.n > r->out->limit)
      tok__jr_fail(r, TOK_ELIMIT, "string longer than the output limit");
    tok__jr_step(r, (a.u.s.n + b.u.s.n) / 4096);
    return tok__jv_str_cat(r, a, b);
  }
  if (op == OP_ADD && a.t == JV_LIST && b.t == JV_LIST && a.tuple == b.tuple) {
    jv l = tok__jv_list_new(r, a.u.l->n + b.u.l->n);
    l.tuple = a.tuple;
    if (a.u.l->n) memcpy(l.u.l->v, a.u.l->v, a.u.l->n * sizeof(jv));
    if (b.u.l->n) memcpy(l.u.l->v + a.u.l->n, b.u.l->v, b.u.l->n * sizeof(jv));
    tok__jr_step(r, l.u.l->n / 16);
    return l;
  }
  if (op == OP_MUL && (a.t == JV_STR || (a.t == JV_LIST && a.tuple != JV_GEN)) && (b.t == JV_INT || b.t == JV_BOOL)) {
    int64_t k = tok__jv_ival(b) < 0 ? 0 : tok__jv_ival(b);
    size_t unit = a.t == JV_STR ? a.u.s.n : a.u.l->n;
    if (!unit || !k) {
      if (a.t == JV_STR) return tok__jv_str("", 0);
      jv empty = tok__jv_list_new(r, 0);
      empty.tuple = a.tuple;
      return empty;
    }
    if (unit && (uint64_t)k > (r->out->limit ? r->out->limit : (1u << 24)) / unit)
      tok__jr_fail(r, TOK_ELIMIT, "repetition longer than the output limit");
    tok__jr_step(r, (uint64_t)k * unit / 64);
    if (a.t == JV_STR) {
      char *s = tok__jr_alloc(r, unit * (size_t)k + 1);
      for (int64_t i = 0; i < k; i++) memcpy(s + (size_t)i * unit, a.u.s.p, unit);
      s[unit * (size_t)k] = 0;
      return tok__jv_str(s, unit * (size_t)k);
    }
    jv l = tok__jv_list_new(r, unit * (size_t)k);
    l.tuple = a.tuple;
    for (int64_t i = 0; i < k; i++) memcpy(l.u.l->v + (size_t)i * unit, a.u.l->v, unit * sizeof(jv));
    return l;
  }
  if (op == OP_MUL && (b.t == JV_STR || (b.t == JV_LIST && b.tuple != JV_GEN)) && (a.t == JV_INT || a.t == JV_BOOL))
    return tok__jv_binop(r, op, b, a);
  if (op == OP_MOD && a.t == JV_STR) return tok__py_percent(r, a, b);
  if (op == OP_ADD && a.t == JV_STR)
    FAIL("can only concatenate str (not \"%s\") to str", tok__jv_type_name(b));
  if (op == OP_ADD && a.t == JV_LIST)
    FAIL("can only concatenate list (not \"%s\") to list", tok__jv_type_name(b));
  FAIL("unsupported operand type(s) for %s: '%s' and '%s'", op_sym(op), tok__jv_type_name(a), tok__jv_type_name(b));
}

static bool compare(jrender *r, int op, jv a, jv b)
{
  switch (op) {
  case CMP_EQ: return tok__jv_eq(r, a, b);
  case CMP_NE: return !tok__jv_eq(r, a, b);
  case CMP_IN: return tok__jv_contains(r, b, a);
  case CMP_NOTIN: return !tok__jv_contains(r, b, a);
  }
  if (a.t == JV_UNDEF) tok__jr_fail_undef(r, a);
  if (b.t == JV_UNDEF) tok__jr_fail_undef(r, b);
  bool ok = (numeric(a) && numeric(b)) || (a.t == JV_STR && b.t == JV_STR) ||
            (a.t == JV_LIST && b.t == JV_LIST && a.tuple == b.tuple && a.tuple != JV_GEN);
  if (!ok) {
    static const char *const syms[] = {"", "==", "!=", "<", "<=", ">", ">="};
    FAIL("'%s' not supported between instances of '%s' and '%s'", syms[op], tok__jv_type_name(a), tok__jv_type_name(b));
  }
  int c = tok__jv_cmp(r, a, b);
  switch (op) {
  case CMP_LT: return c < 0;
  case CMP_LE: return c <= 0;
  case CMP_GT: return c > 0;
  default: return c >= 0;
  }
}

/* ---- expressions ------------------------------------------------------------------ */
static jv eval(jrender *r, jframe *f, const jnode *n)
{
  tok__jr_step(r, 1);
  switch (n->kind) {
  case N_LIT: return n->lit;
  case N_NAME: return lookup(r, f, n->name);
  case N_LIST: case N_TUPLE: {
    jv l = tok__jv_list_new(r, n->n_items);
    l.tuple = n->kind == N_TUPLE;
    for (size_t i = 0; i < n->n_items; i++) l.u.l->v[i] = eval(r, f, n->items[i]);
    return l;
  }
  case N_DICT: {
    jdict *d = tok__jd_new(r, n->n_items / 2);
    for (size_t i = 0; i + 1 < n->n_items; i += 2) {
      jv k = eval(r, f, n->items[i]);
      if (k.t == JV_LIST && !k.tuple) FAIL("unhashable type: 'list'");
      if (k.t == JV_DICT) FAIL("unhashable type: 'dict'");
      tok__jd_set(r, d, k, eval(r, f, n->items[i + 1]));
    }
    return (jv){.t = JV_DICT, .u.d = d};
  }
  case N_ATTR: return getattr_v(r, eval(r, f, n->a), n->name, strlen(n->name), true);
  case N_ITEM: return tok__jv_getitem(r, eval(r, f, n->a), eval(r, f, n->b));
  case N_SLICE: {
    jv obj = eval(r, f, n->a);
    jv s = n->b ? eval(r, f, n->b) : tok__jv_none();
    jv e = n->c ? eval(r, f, n->c) : tok__jv_none();
    jv st = n->d ? eval(r, f, n->d) : tok__jv_none();
    return tok__jv_slice(r, obj, s, e, st);
  }
  case N_CALL: {
    jv fn = eval(r, f, n->a);
    jargs a;
    eval_args(r, f, n, &a);
    return call(r, fn, &a);
  }
  case N_BLOCK: return r->block_text;
  case N_FILTER: {
    if (n->id < 0) FAIL("No filter named '%s' found.", n->name);
    jv v = eval(r, f, n->a);
    jargs a;
    eval_args(r, f, n, &a);
    return tok__jr_filter(r, n->id, v, &a);
  }
  case N_TEST: {
    if (n->id < 0) FAIL("No test named '%s' found.", n->name);
    jv v = eval(r, f, n->a);
    jargs a;
    eval_args(r, f, n, &a);
    bool t = tok__jr_test(r, n->id, v, &a);
    return tok__jv_bool(n->op ? !t : t);
  }
  case N_NEG: case N_POS: {
    jv v = eval(r, f, n->a);
    if (v.t == JV_UNDEF) tok__jr_fail_undef(r, v);
    if (v.t == JV_INT || v.t == JV_BOOL) {
      int64_t x = tok__jv_ival(v);
      if (n->kind == N_POS) return tok__jv_int(x);
      if (x == INT64_MIN) FAIL("integer overflow");
      return tok__jv_int(-x);
    }
    if (v.t == JV_FLOAT) return tok__jv_float(n->kind == N_NEG ? -v.u.f : v.u.f);
    FAIL("bad operand type for unary %s: '%s'", n->kind == N_NEG ? "-" : "+", tok__jv_type_name(v));
  }
  case N_NOT: return tok__jv_bool(!tok__jv_truthy(eval(r, f, n->a)));
  case N_AND: {
    jv a = eval(r, f, n->a);
    return tok__jv_truthy(a) ? eval(r, f, n->b) : a;
  }
  case N_OR: {
    jv a = eval(r, f, n->a);
    return tok__jv_truthy(a) ? a : eval(r, f, n->b);
  }
  case N_BIN: return tok__jv_binop(r, n->op, eval(r, f, n->a), eval(r, f, n->b));
  case N_CMP: {
    jv left = eval(r, f, n->a);
    for (size_t i = 0; i < n->n_items; i++) {
      jv right = eval(r, f, n->items[i]);
      if (!compare(r, n->ops[i], left, right)) return tok__jv_bool(false);
      left = right;
    }
    return tok__jv_bool(true);
  }
  case N_COND:
    if (tok__jv_truthy(eval(r, f, n->a))) return eval(r, f, n->b);
    return n->c ? eval(r, f, n->c) : tok__jv_undef("the inline if-expression evaluated to false and no else section was defined");
  case N_CONCAT: {
    jdivert *d = tok__jr_divert_begin(r);
    for (size_t i = 0; i < n->n_items; i++) tok__jv_str_out(r, r->out, eval(r, f, n->items[i]));
    return tok__jr_divert_end(r, d);
  }
  default:
    FAIL("internal: not an expression");
  }
}

/* ---- statements ------------------------------------------------------------------- */
/* A filter chain applied to a block's rendered text (N_BLOCK at its innermost operand);
 * blocks nest through macro calls, so the previous text is restored after. */
static jv filter_block(jrender *r, jframe *f, const jnode *chain, jv body)
{
  jv saved = r->block_text;
  r->block_text = body;
  jv v = eval(r, f, chain);
  r->block_text = saved;
  return v;
}

static void bind_targets(jrender *r, jframe *f, const jnode *n, jv v)
{
  if (n->n_names == 1) {
    tok__jr_set(r, f, n->names[0], v);
    return;
  }
  if (v.t != JV_LIST) FAIL("cannot unpack non-iterable %s object", tok__jv_type_name(v));
  if (v.u.l->n != n->n_names)
    FAIL("%s values to unpack (expected %zu, got %zu)", v.u.l->n > n->n_names ? "too many" : "not enough", n->n_names, v.u.l->n);
  for (size_t i = 0; i < n->n_names; i++) tok__jr_set(r, f, n->names[i], v.u.l->v[i]);
}

/* ---- loop scopes ------------------------------------------------------------------
 * A loop marks the arena before its first iteration and releases it to that mark after
 * each one, so the temporaries of an iteration (slices such as messages[loop.index0:],
 * range() lists, strings built and printed) die with it and a render holds O(input +
 * output + live values) instead of growing with every iteration. Values are immutable, so
 * nothing made before the mark can point past it, with one exception: a namespace
 * attribute set inside the loop (`{% set ns.x = ... %}`). Those namespaces are listed as
 * dirty; after an iteration what they hold past the iteration's own mark is moved out
 * (copied to a scratch arena, the arena released to that mark, copied back). The copies
 * left by earlier iterations pile up between the loop's mark and the iteration's, so when
 * that pile passes twice what was live after the last compaction (plus 64 KiB), the
 * iteration is released to the loop's mark instead and everything live is moved: memory
 * stays within a constant factor of what is live, and each byte is copied O(1) times on
 * average (a namespace list that grows by one item per message still costs a copy of the
 * list per compaction). Most iterations set only flags and counters, which point nowhere,
 * and move nothing. */
static void mark_dirty(jrender *r, jdict *d)
{
  for (size_t i = 0; i < r->n_dirty; i++)
    if (r->dirty[i] == d) return;
  if (r->n_dirty == r->cap_dirty) {
    size_t cap = r->cap_dirty ? 2 * r->cap_dirty : 8;
    jdict **g = realloc(r->dirty, cap * sizeof *g);
    if (!g) tok__jr_fail(r, TOK_ENOMEM, "out of memory while rendering");
    r->dirty = g;
    r->cap_dirty = cap;
  }
  r->dirty[r->n_dirty++] = d;
}

typedef struct jmove {
  jrender *r;
  const jarena *from; /* move what lies in from since mark... */
  jmark mark;
  jarena *to; /* ...into to */
} jmove;

static void *move_alloc(const jmove *mv, size_t n)
{
  void *p = tok__ja_alloc_raw(mv->to, n);
  if (!p)
    tok__jr_fail(mv->r, TOK_ELIMIT, "chat template render exceeds its memory limit (%zu bytes)",
            mv->r->arena.limit);
  return p;
}

static jv move_value(const jmove *mv, jv v, unsigned depth);

static jv *move_items(const jmove *mv, const jv *items, size_t n, size_t cap, unsigned depth)
{
  jv *out = cap ? move_alloc(mv, cap * sizeof(jv)) : NULL;
  for (size_t i = 0; i < n; i++) out[i] = move_value(mv, items[i], depth + 1);
  return out;
}

static jv move_value(const jmove *mv, jv v, unsigned depth)
{
  jrender *r = mv->r;
  if (depth > 200) tok__jr_fail(r, TOK_ELIMIT, "chat template: a namespace value nested too deeply to keep");
  tok__jr_step(r, 1);
  switch (v.t) {
  case JV_STR: case JV_UNDEF:
    if (v.u.s.p && tok__ja_since(mv->from, mv->mark, v.u.s.p)) {
      char *c = move_alloc(mv, v.u.s.n + 1);
      memcpy(c, v.u.s.p, v.u.s.n);
      c[v.u.s.n] = 0;
      tok__jr_step(r, v.u.s.n / 256);
      v.u.s.p = c;
    }
    return v;
  case JV_LIST:
    if (tok__ja_since(mv->from, mv->mark, v.u.l)) {
      jlist *l = move_alloc(mv, sizeof *l);
      l->n = v.u.l->n;
      l->v = move_items(mv, v.u.l->v, l->n, l->n, depth);
      l->group = v.u.l->group;
      v.u.l = l;
    }
    return v;
  case JV_DICT: case JV_NS:
    if (tok__ja_since(mv->from, mv->mark, v.u.d)) {
      jdict *d = move_alloc(mv, sizeof *d);
      d->n = d->cap = v.u.d->n;
      d->k = move_items(mv, v.u.d->k, d->n, d->cap, depth);
      d->v = move_items(mv, v.u.d->v, d->n, d->cap, depth);
      v.u.d = d;
    }
    return v;
  case JV_LOOP:
    if (tok__ja_since(mv->from, mv->mark, v.u.loop)) {
      jloop *lp = move_alloc(mv, sizeof *lp);
      jv items = move_value(mv, (jv){.t = JV_LIST, .u.l = (jlist *)v.u.loop->items}, depth + 1);
      lp->items = items.u.l;
      lp->i = v.u.loop->i;
      v.u.loop = lp;
    }
    return v;
  case JV_FUNC:
    if (tok__ja_since(mv->from, mv->mark, v.u.fn)) {
      if (v.u.fn->scope && tok__ja_since(mv->from, mv->mark, v.u.fn->scope))
        FAIL("a macro defined inside a loop cannot be kept in a namespace past the iteration");
      jfunc *fn = move_alloc(mv, sizeof *fn);
      *fn = *v.u.fn;
      fn->self = move_value(mv, fn->self, depth + 1);
      v.u.fn = fn;
    }
    return v;
  default:
    return v;
  }
}

/* true when the namespace d holds anything allocated since m: its arrays, or a value
 * that points there (scalars point nowhere; most iterations set only flags and counters) */
static bool holds_since(const jarena *a, jmark m, const jdict *d)
{
  if (tok__ja_since(a, m, d->k) || tok__ja_since(a, m, d->v)) return true;
  for (size_t i = 0; i < d->n; i++) {
    jv v = d->v[i];
    const void *p = v.t == JV_STR || v.t == JV_UNDEF ? (const void *)v.u.s.p
                    : v.t == JV_LIST ? (const void *)v.u.l
                    : v.t == JV_DICT || v.t == JV_NS ? (const void *)v.u.d
                    : v.t == JV_FUNC ? (const void *)v.u.fn
                    : v.t == JV_LOOP ? (const void *)v.u.loop : NULL;
    if (p && tok__ja_since(a, m, p)) return true;
  }
  return false;
}

/* Ends a loop iteration that began at mi, of a loop that began at m0 (*live: the bytes
 * kept above m0 at the last compaction): frees what the iteration allocated, keeping what
 * the dirty namespaces now hold. */
static void scope_end(jrender *r, jmark m0, jmark mi, size_t *live)
{
  bool full = tok__ja_bytes_since(&r->arena, m0) > 2 * *live + 65536;
  jmark m = full ? m0 : mi;
  size_t keep = 0;
  bool move = false;
  for (size_t i = 0; i < r->n_dirty; i++) /* a namespace made in the iteration dies with it */
    if (!tok__ja_since(&r->arena, m, r->dirty[i])) {
      r->dirty[keep++] = r->dirty[i];
      move = move || holds_since(&r->arena, m, r->dirty[i]);
    }
  r->n_dirty = keep;
  if (!move) {
    tok__ja_release(&r->arena, m);
    if (full) *live = 0;
    return;
  }
  jarena *scratch = &r->scratch; /* the render's, so that a failure here frees it too */
  scratch->limit = r->arena.limit;
  jmove out = {r, &r->arena, m, scratch};
  jdict *held = move_alloc(&out, keep * sizeof *held);
  for (size_t i = 0; i < keep; i++) {
    jdict *d = r->dirty[i];
    held[i].n = held[i].cap = d->n;
    held[i].k = move_items(&out, d->k, d->n, d->n, 0);
    held[i].v = move_items(&out, d->v, d->n, d->n, 0);
  }
  tok__ja_release(&r->arena, m);
  jmove back = {r, scratch, (jmark){NULL, 0, 0}, &r->arena};
  for (size_t i = 0; i < keep; i++) {
    jdict *d = r->dirty[i];
    d->n = d->cap = held[i].n;
    d->k = move_items(&back, held[i].k, d->n, d->cap, 0);
    d->v = move_items(&back, held[i].v, d->n, d->cap, 0);
  }
  tok__ja_release(scratch, (jmark){NULL, 0, 0}); /* keeps a chunk for the next iteration */
  if (full) *live = tok__ja_bytes_since(&r->arena, m0);
}

static void exec_for(jrender *r, jframe *f, const jnode *n)
{
  jv seq = eval(r, f, n->a);
  const jlist *items = tok__jv_iterate(r, seq);
  if (n->d) { /* the loop filter runs before loop.* is computed */
    jvec kept = {0};
    for (size_t i = 0; i < items->n; i++) {
      jframe *tf = frame_new(r, f);
      bind_targets(r, tf, n, items->v[i]);
      if (tok__jv_truthy(eval(r, tf, n->d))) tok__jvec_push(r, &kept, items->v[i]);
    }
    items = tok__jv_list_from(r, kept.v, kept.n).u.l;
  }
  if (!items->n) {
    if (n->c) exec(r, f, n->c);
    return;
  }
  jloop *lp = tok__jr_alloc(r, sizeof *lp);
  lp->items = items;
  jmark m0 = tok__ja_mark(&r->arena);
  size_t live = 0;
  for (size_t i = 0; i < items->n; i++) {
    jmark mi = tok__ja_mark(&r->arena);
    tok__jr_step(r, 1);
    lp->i = i;
    jframe *it = frame_new(r, f);
    tok__jr_set(r, it, "loop", (jv){.t = JV_LOOP, .u.loop = lp});
    bind_targets(r, it, n, items->v[i]);
    exec(r, it, n->b);
    scope_end(r, m0, mi, &live);
    if (r->loop_ctl == 1) {
      r->loop_ctl = 0;
      break;
    }
    r->loop_ctl = 0;
    /* a nested loop rebinds `loop` in its own frame, so lp stays this loop's */
  }
}

static void exec(jrender *r, jframe *f, const jnode *n)
{
  tok__jr_step(r, 1);
  switch (n->kind) {
  case S_BODY:
    for (size_t i = 0; i < n->n_items; i++) {
      exec(r, f, n->items[i]);
      if (r->loop_ctl) return;
    }
    return;
  case S_TEXT: tok__jr_buf_put(r, r->out, n->lit.u.s.p, n->lit.u.s.n); return;
  case S_OUT: tok__jv_str_out(r, r->out, eval(r, f, n->a)); return;
  case S_IF:
    if (tok__jv_truthy(eval(r, f, n->a))) exec(r, f, n->b);
    else if (n->c) exec(r, f, n->c);
    return;
  case S_FOR: exec_for(r, f, n); return;
  case S_SET: bind_targets(r, f, n, eval(r, f, n->a)); return;
  case S_SET_ATTR: {
    jv ns = lookup(r, f, n->name);
    if (ns.t != JV_NS) FAIL("cannot assign attribute on non-namespace object");
    jv v = eval(r, f, n->a);
    tok__jd_set(r, ns.u.d, tok__jv_str(n->names[0], strlen(n->names[0])), v);
    mark_dirty(r, ns.u.d);
    return;
  }
  case S_SET_BLOCK: {
    jdivert *d = tok__jr_divert_begin(r);
    exec(r, f, n->b);
    jv body = tok__jr_divert_end(r, d);
    tok__jr_set(r, f, n->names[0], n->a ? filter_block(r, f, n->a, body) : body);
    return;
  }
  case S_FILTER: {
    jdivert *d = tok__jr_divert_begin(r);
    exec(r, f, n->b);
    jv v = filter_block(r, f, n->a, tok__jr_divert_end(r, d)); /* before reading r->out: it ends the divert */
    tok__jv_str_out(r, r->out, v);
    return;
  }
  case S_MACRO: {
    jfunc *fn = tok__jr_alloc(r, sizeof *fn);
    fn->id = -1;
    fn->self = tok__jv_none();
    fn->macro = n;
    fn->scope = f; /* jinja2's macros see the variables of the scope they are defined in */
    tok__jr_set(r, f, n->name, (jv){.t = JV_FUNC, .u.fn = fn});
    return;
  }
  case S_BREAK: r->loop_ctl = 1; return;
  case S_CONTINUE: r->loop_ctl = 2; return;
  default:
    FAIL("internal: not a statement");
  }
}

jv tok__jr_render_value(jrender *r, const tok_chat_template *t, jframe *globals)
{
  r->globals = globals;
  exec(r, globals, t->root);
  return tok__jv_none();
}
