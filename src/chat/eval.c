/*
 * eval.c — the chat engine's evaluator: statements write to the render's output, expressions
 * give values; filters, tests, the string and dict methods templates call, and the globals
 * jinja2 and transformers provide (range, namespace, dict, raise_exception, strftime_now).
 *
 * Every evaluation counts a step and every allocation comes from the render's capped arena
 * (jinja_int.h), so a template loop that never ends, a macro that recurses forever or a
 * value that doubles itself stops with TOK_ELIMIT instead of taking the process with it.
 * Errors follow jinja2's: a value that is undefined may be printed (as ""), tested and
 * iterated (as empty) but using it otherwise fails with jinja2's message for it.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "chat/jinja_int.h"


/* the builtin functions and methods a JV_FUNC can stand for */
enum {
  B_RANGE, B_NAMESPACE, B_DICT, B_RAISE, B_STRFTIME, B_CYCLE,
  M_STARTSWITH, M_ENDSWITH, M_STRIP, M_LSTRIP, M_RSTRIP, M_SPLIT, M_RSPLIT, M_UPPER, M_LOWER,
  M_TITLE, M_CAPITALIZE, M_REPLACE, M_FIND, M_RFIND, M_COUNT, M_JOIN, M_SPLITLINES,
  M_ISDIGIT, M_ISALPHA, M_ISSPACE, M_ISALNUM, M_ISUPPER, M_ISLOWER, M_FORMAT,
  M_ITEMS, M_KEYS, M_VALUES, M_GET, M_LCOUNT, M_LINDEX, M_LCOPY,
  M_UNSAFE, /* a method that mutates (append, update, pop, ...): the sandbox refuses it */
};

static const struct { const char *name; int id; } STR_METHODS[] = {
    {"startswith", M_STARTSWITH}, {"endswith", M_ENDSWITH}, {"strip", M_STRIP},
    {"lstrip", M_LSTRIP}, {"rstrip", M_RSTRIP}, {"split", M_SPLIT}, {"rsplit", M_RSPLIT},
    {"upper", M_UPPER}, {"lower", M_LOWER}, {"title", M_TITLE}, {"capitalize", M_CAPITALIZE},
    {"replace", M_REPLACE}, {"find", M_FIND}, {"rfind", M_RFIND}, {"count", M_COUNT},
    {"join", M_JOIN}, {"splitlines", M_SPLITLINES}, {"isdigit", M_ISDIGIT},
    {"isalpha", M_ISALPHA}, {"isspace", M_ISSPACE}, {"isalnum", M_ISALNUM},
    {"isupper", M_ISUPPER}, {"islower", M_ISLOWER}, {"format", M_FORMAT},
};
static const struct { const char *name; int id; } DICT_METHODS[] = {
    {"items", M_ITEMS}, {"keys", M_KEYS}, {"values", M_VALUES}, {"get", M_GET},
    {"pop", M_UNSAFE}, {"popitem", M_UNSAFE}, {"update", M_UNSAFE}, {"clear", M_UNSAFE},
    {"setdefault", M_UNSAFE}, {"copy", M_UNSAFE}, {"fromkeys", M_UNSAFE},
};
static const struct { const char *name; int id; } LIST_METHODS[] = {
    {"count", M_LCOUNT}, {"index", M_LINDEX}, {"copy", M_LCOPY}, {"append", M_UNSAFE},
    {"extend", M_UNSAFE}, {"insert", M_UNSAFE}, {"pop", M_UNSAFE}, {"remove", M_UNSAFE},
    {"clear", M_UNSAFE}, {"sort", M_UNSAFE}, {"reverse", M_UNSAFE},
};

static jv eval(jrender *r, jframe *f, const jnode *n);
static void exec(jrender *r, jframe *f, const jnode *n);

#define FAIL(...) tok__jr_fail(r, TOK_ERENDER, __VA_ARGS__)

_Noreturn static void fail_undef(jrender *r, jv v)
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
    const char **nn = tok__jr_alloc(r, cap * sizeof *nn);
    jv *nv = tok__jr_alloc(r, cap * sizeof *nv);
    if (f->n) {
      memcpy(nn, f->names, f->n * sizeof *nn);
      memcpy(nv, f->vals, f->n * sizeof *nv);
    }
    f->names = nn;
    f->vals = nv;
    f->cap = cap;
  }
  f->names[f->n] = name;
  f->vals[f->n++] = v;
}

static jv func(jrender *r, int id, jv self)
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
    for (size_t i = f->n; i-- > 0;)
      if (strcmp(f->names[i], name) == 0) return f->vals[i];
  static const struct { const char *name; int id; } globals[] = {
      {"range", B_RANGE}, {"namespace", B_NAMESPACE}, {"dict", B_DICT},
      {"raise_exception", B_RAISE}, {"strftime_now", B_STRFTIME}};
  for (size_t i = 0; i < sizeof globals / sizeof *globals; i++)
    if (strcmp(globals[i].name, name) == 0) return func(r, globals[i].id, tok__jv_none());
  return undef_fmt(r, "'%s' is undefined", name, "");
}

/* ---- strings ---------------------------------------------------------------------- */
static jv str_cat(jrender *r, jv a, jv b)
{
  char *s = tok__jr_alloc(r, a.u.s.n + b.u.s.n + 1);
  memcpy(s, a.u.s.p, a.u.s.n);
  memcpy(s + a.u.s.n, b.u.s.p, b.u.s.n);
  s[a.u.s.n + b.u.s.n] = 0;
  return tok__jv_str(s, a.u.s.n + b.u.s.n);
}

static jv need_str(jrender *r, jv v, const char *what)
{
  if (v.t == JV_UNDEF) fail_undef(r, v);
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

typedef int32_t (*case_fn)(int32_t);
static int32_t up1(int32_t c) { return utf8proc_toupper(c); }
static int32_t lo1(int32_t c) { return utf8proc_tolower(c); }
static int32_t ti1(int32_t c) { return utf8proc_totitle(c); }

static jv map_case(jrender *r, jv s, int mode) /* 0 upper, 1 lower, 2 title, 3 capitalize */
{
  char *o = tok__jr_alloc(r, s.u.s.n * 2 + 4);
  size_t n = 0, cap = s.u.s.n * 2 + 4;
  bool prev_cased = false, first = true;
  for (size_t i = 0; i < s.u.s.n;) {
    int32_t c = tok__jv_next_cp(s.u.s.p, s.u.s.n, &i);
    case_fn f;
    if (mode == 0) f = up1;
    else if (mode == 1) f = lo1;
    else if (mode == 3) f = first ? ti1 : lo1;
    else f = prev_cased ? lo1 : ti1;
    int32_t m = f(c);
    /* Python's title(): a letter after a cased letter is lowered, else titled */
    const utf8proc_property_t *pr = utf8proc_get_property(c);
    bool cased = pr->category == UTF8PROC_CATEGORY_LU || pr->category == UTF8PROC_CATEGORY_LL ||
                 pr->category == UTF8PROC_CATEGORY_LT;
    prev_cased = cased;
    first = false;
    if (n + 4 > cap) {
      char *g = tok__jr_alloc(r, cap * 2);
      memcpy(g, o, n);
      o = g;
      cap *= 2;
    }
    n += (size_t)utf8proc_encode_char(m, (utf8proc_uint8_t *)o + n);
  }
  o[n] = 0;
  return tok__jv_str(o, n);
}

/* strip with Python's rules: chars NULL = whitespace, else any code point of chars */
static bool in_chars(int32_t c, jv chars)
{
  if (chars.t != JV_STR) return tok__jv_py_space(c);
  for (size_t i = 0; i < chars.u.s.n;)
    if (tok__jv_next_cp(chars.u.s.p, chars.u.s.n, &i) == c) return true;
  return false;
}

static jv do_strip(jv s, jv chars, bool left, bool right)
{
  size_t b = 0, e = s.u.s.n;
  if (left)
    while (b < e) {
      size_t k = b;
      if (!in_chars(tok__jv_next_cp(s.u.s.p, e, &k), chars)) break;
      b = k;
    }
  if (right)
    while (e > b) {
      size_t st = e - 1;
      while (st > b && ((unsigned char)s.u.s.p[st] & 0xC0) == 0x80) st--;
      size_t k = st;
      if (!in_chars(tok__jv_next_cp(s.u.s.p, e, &k), chars)) break;
      e = st;
    }
  return tok__jv_str(s.u.s.p + b, e - b);
}

static const char *find_bytes(const char *h, size_t hn, const char *nd, size_t nn)
{
  if (nn == 0) return h;
  if (nn > hn) return NULL;
  return memmem(h, hn, nd, nn);
}

static jv list_from(jrender *r, jv *items, size_t n)
{
  jv l = tok__jv_list_new(r, n);
  if (n) memcpy(l.u.l->v, items, n * sizeof(jv));
  return l;
}

typedef struct jvec {
  jv *v;
  size_t n, cap;
} jvec;

static void vec_push(jrender *r, jvec *v, jv x)
{
  if (v->n == v->cap) {
    size_t cap = v->cap ? 2 * v->cap : 8;
    jv *g = tok__jr_alloc(r, cap * sizeof(jv));
    if (v->n) memcpy(g, v->v, v->n * sizeof(jv));
    v->v = g;
    v->cap = cap;
  }
  v->v[v->n++] = x;
}

static jv do_split(jrender *r, jv s, jv sep, int64_t maxsplit, bool from_right)
{
  jvec out = {0};
  const char *p = s.u.s.p;
  size_t n = s.u.s.n;
  if (sep.t == JV_NONE || sep.t == JV_UNDEF) {
    /* runs of whitespace; leading/trailing ignored */
    if (!from_right) {
      size_t i = 0;
      while (i < n) {
        size_t k;
        while (i < n && (k = i, tok__jv_py_space(tok__jv_next_cp(p, n, &k)))) i = k;
        if (i >= n) break;
        if (maxsplit >= 0 && (int64_t)out.n == maxsplit) {
          size_t e = n;
          jv rest = do_strip(tok__jv_str(p + i, e - i), tok__jv_none(), false, true);
          vec_push(r, &out, rest);
          break;
        }
        size_t st = i;
        while (i < n && (k = i, !tok__jv_py_space(tok__jv_next_cp(p, n, &k)))) i = k;
        vec_push(r, &out, tok__jv_str(p + st, i - st));
        tok__jr_step(r, 1);
      }
    } else {
      jv t = do_strip(s, tok__jv_none(), false, true);
      jvec rev = {0};
      size_t e = t.u.s.n;
      const char *q = t.u.s.p;
      while (e > 0) {
        if (maxsplit >= 0 && (int64_t)rev.n == maxsplit) {
          vec_push(r, &rev, do_strip(tok__jv_str(q, e), tok__jv_none(), true, false));
          break;
        }
        size_t st = e;
        for (;;) {
          if (st == 0) break;
          size_t b = st - 1;
          while (b > 0 && ((unsigned char)q[b] & 0xC0) == 0x80) b--;
          size_t k = b;
          if (tok__jv_py_space(tok__jv_next_cp(q, st, &k))) break;
          st = b;
        }
        vec_push(r, &rev, tok__jv_str(q + st, e - st));
        e = st;
        while (e > 0) {
          size_t b = e - 1;
          while (b > 0 && ((unsigned char)q[b] & 0xC0) == 0x80) b--;
          size_t k = b;
          if (!tok__jv_py_space(tok__jv_next_cp(q, e, &k))) break;
          e = b;
        }
        tok__jr_step(r, 1);
      }
      for (size_t i = rev.n; i-- > 0;) vec_push(r, &out, rev.v[i]);
    }
    return list_from(r, out.v, out.n);
  }
  sep = need_str(r, sep, "split");
  if (!sep.u.s.n) FAIL("empty separator");
  if (!from_right) {
    size_t i = 0;
    for (;;) {
      const char *hit = (maxsplit >= 0 && (int64_t)out.n == maxsplit)
                            ? NULL : find_bytes(p + i, n - i, sep.u.s.p, sep.u.s.n);
      if (!hit) {
        vec_push(r, &out, tok__jv_str(p + i, n - i));
        break;
      }
      vec_push(r, &out, tok__jv_str(p + i, (size_t)(hit - (p + i))));
      i = (size_t)(hit - p) + sep.u.s.n;
      tok__jr_step(r, 1);
    }
  } else {
    jvec rev = {0};
    size_t e = n;
    for (;;) {
      const char *hit = NULL;
      if (!(maxsplit >= 0 && (int64_t)rev.n == maxsplit) && e >= sep.u.s.n)
        for (size_t k = e - sep.u.s.n + 1; k-- > 0;)
          if (memcmp(p + k, sep.u.s.p, sep.u.s.n) == 0) {
            hit = p + k;
            break;
          }
      if (!hit) {
        vec_push(r, &rev, tok__jv_str(p, e));
        break;
      }
      size_t after = (size_t)(hit - p) + sep.u.s.n;
      vec_push(r, &rev, tok__jv_str(p + after, e - after));
      e = (size_t)(hit - p);
      tok__jr_step(r, 1);
    }
    for (size_t i = rev.n; i-- > 0;) vec_push(r, &out, rev.v[i]);
  }
  return list_from(r, out.v, out.n);
}

/* The strings parts[0..n) joined, within the output limit. */
static jv concat_strs(jrender *r, const jv *parts, size_t n)
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

static jv do_replace(jrender *r, jv s, jv old, jv new_, int64_t count)
{
  old = need_str(r, old, "replace");
  new_ = need_str(r, new_, "replace");
  jvec parts = {0};
  const char *p = s.u.s.p;
  size_t n = s.u.s.n, i = 0;
  int64_t done = 0;
  if (!old.u.s.n) { /* Python inserts new between every character */
    size_t cps = tok__jv_str_chars(p, n);
    for (size_t k = 0; k <= cps; k++) {
      if (count >= 0 && done >= count) {
        vec_push(r, &parts, tok__jv_str(p + i, n - i));
        i = n;
        break;
      }
      vec_push(r, &parts, new_);
      done++;
      if (i < n) {
        size_t st = i;
        tok__jv_next_cp(p, n, &i);
        vec_push(r, &parts, tok__jv_str(p + st, i - st));
      }
      tok__jr_step(r, 1);
    }
  } else {
    for (;;) {
      const char *hit = (count >= 0 && done >= count) ? NULL : find_bytes(p + i, n - i, old.u.s.p, old.u.s.n);
      if (!hit) {
        vec_push(r, &parts, tok__jv_str(p + i, n - i));
        break;
      }
      vec_push(r, &parts, tok__jv_str(p + i, (size_t)(hit - (p + i))));
      vec_push(r, &parts, new_);
      done++;
      i = (size_t)(hit - p) + old.u.s.n;
      tok__jr_step(r, 1);
    }
  }
  return concat_strs(r, parts.v, parts.n);
}

/* ---- iteration -------------------------------------------------------------------- */
static jv str_chars_list(jrender *r, jv s)
{
  jvec v = {0};
  for (size_t i = 0; i < s.u.s.n;) {
    size_t st = i;
    tok__jv_next_cp(s.u.s.p, s.u.s.n, &i);
    vec_push(r, &v, tok__jv_str(s.u.s.p + st, i - st));
  }
  return list_from(r, v.v, v.n);
}

/* The items a for loop or a filter sees: list items, dict keys, string characters. */
static const jlist *iterate(jrender *r, jv v)
{
  static const jlist empty = {0, NULL};
  switch (v.t) {
  case JV_UNDEF: return &empty;
  case JV_LIST: return v.u.l;
  case JV_DICT: return list_from(r, v.u.d->k, v.u.d->n).u.l;
  case JV_STR: return str_chars_list(r, v).u.l;
  default: FAIL("'%s' object is not iterable", tok__jv_type_name(v));
  }
}

static int64_t length_of(jrender *r, jv v)
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
  if (!strcmp(name, "cycle")) return func(r, B_CYCLE, tok__jv_int(i));
  return undef_fmt(r, "'LoopContext object' has no attribute '%s'%s", name, "");
}

static jv getattr_v(jrender *r, jv obj, const char *name, size_t name_len)
{
  char tb[64];
  switch (obj.t) {
  case JV_UNDEF: fail_undef(r, obj);
  case JV_DICT:
    for (size_t i = 0; i < sizeof DICT_METHODS / sizeof *DICT_METHODS; i++)
      if (strlen(DICT_METHODS[i].name) == name_len && !memcmp(DICT_METHODS[i].name, name, name_len))
        return func(r, DICT_METHODS[i].id, obj);
    {
      const jv *v = tok__jd_get_str(obj.u.d, name, name_len);
      tok__jr_step(r, obj.u.d->n / 16);
      if (v) return *v;
    }
    break;
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
    for (size_t i = 0; i < sizeof STR_METHODS / sizeof *STR_METHODS; i++)
      if (strlen(STR_METHODS[i].name) == name_len && !memcmp(STR_METHODS[i].name, name, name_len))
        return func(r, STR_METHODS[i].id, obj);
    break;
  case JV_LIST:
    if (obj.tuple == JV_GEN) break;
    for (size_t i = 0; i < sizeof LIST_METHODS / sizeof *LIST_METHODS; i++)
      if (strlen(LIST_METHODS[i].name) == name_len && !memcmp(LIST_METHODS[i].name, name, name_len) &&
          (!obj.tuple || LIST_METHODS[i].id == M_LCOUNT || LIST_METHODS[i].id == M_LINDEX))
        return func(r, LIST_METHODS[i].id, obj);
    break;
  default:
    break;
  }
  char nm[128];
  snprintf(nm, sizeof nm, "%.*s", (int)(name_len > 100 ? 100 : name_len), name);
  return undef_fmt(r, "%s has no attribute '%s'", obj_repr(obj, tb, sizeof tb), nm);
}

static jv getitem_v(jrender *r, jv obj, jv key)
{
  char tb[64];
  switch (obj.t) {
  case JV_UNDEF: fail_undef(r, obj);
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
  if (key.t == JV_STR) return getattr_v(r, obj, key.u.s.p, key.u.s.n);
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
static jv slice_v(jrender *r, jv obj, jv start_v, jv stop_v, jv step_v)
{
  if (obj.t == JV_UNDEF) fail_undef(r, obj);
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
    for (int64_t i = lo; i < hi; i += step) vec_push(r, &out, items.u.l->v[i]);
  else
    for (int64_t i = lo; i > hi; i += step) vec_push(r, &out, items.u.l->v[i]);
  tok__jr_step(r, out.n / 8);
  if (obj.t == JV_LIST) {
    jv l = list_from(r, out.v, out.n);
    l.tuple = obj.tuple;
    return l;
  }
  return concat_strs(r, out.v, out.n);
}

/* ---- arguments -------------------------------------------------------------------- */
typedef struct args {
  jv pos[8];
  size_t n_pos;
  const char *kw_names[8];
  jv kw[8];
  size_t n_kw;
} args;

static void eval_args(jrender *r, jframe *f, const jnode *n, args *a)
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
static jv arg(const args *a, size_t i, const char *name, jv def)
{
  if (i < 8 && i < a->n_pos) return a->pos[i];
  for (size_t k = 0; k < a->n_kw; k++)
    if (name && strcmp(a->kw_names[k], name) == 0) return a->kw[k];
  return def;
}

static int64_t int_arg(jrender *r, jv v, const char *what)
{
  if (v.t == JV_INT) return v.u.i;
  if (v.t == JV_BOOL) return v.u.b;
  FAIL("%s: expected an integer, got %s", what, tok__jv_type_name(v));
}

/* ---- tests ------------------------------------------------------------------------ */

static bool run_test(jrender *r, int id, jv v, const args *a);
static jv binop(jrender *r, int op, jv a, jv b);

static bool contains(jrender *r, jv hay, jv needle)
{
  switch (hay.t) {
  case JV_STR:
    needle = need_str(r, needle, "'in <string>'");
    tok__jr_step(r, hay.u.s.n / 64);
    return find_bytes(hay.u.s.p, hay.u.s.n, needle.u.s.p, needle.u.s.n) != NULL;
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

static bool all_case(jv v, bool upper)
{
  if (v.t != JV_STR) return false;
  bool cased = false;
  for (size_t i = 0; i < v.u.s.n;) {
    int32_t c = tok__jv_next_cp(v.u.s.p, v.u.s.n, &i);
    utf8proc_category_t cat = utf8proc_category(c);
    if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LT) {
      if (!upper) return false;
      cased = true;
    } else if (cat == UTF8PROC_CATEGORY_LL) {
      if (upper) return false;
      cased = true;
    }
  }
  return cased;
}

static bool run_test(jrender *r, int id, jv v, const args *a)
{
  jv x = arg(a, 0, NULL, tok__jv_undef("test needs an argument"));
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
  case TS_odd: return tok__jv_eq(r, binop(r, OP_MOD, v, tok__jv_int(2)), tok__jv_int(1));
  case TS_even: return tok__jv_eq(r, binop(r, OP_MOD, v, tok__jv_int(2)), tok__jv_int(0));
  case TS_divisibleby: return tok__jv_eq(r, binop(r, OP_MOD, v, x), tok__jv_int(0));
  case TS_eq: case TS_equalto: return tok__jv_eq(r, v, x);
  case TS_ne: return !tok__jv_eq(r, v, x);
  case TS_lt: case TS_lessthan: return tok__jv_cmp(r, v, x) < 0;
  case TS_le: return tok__jv_cmp(r, v, x) <= 0;
  case TS_gt: case TS_greaterthan: return tok__jv_cmp(r, v, x) > 0;
  case TS_ge: return tok__jv_cmp(r, v, x) >= 0;
  case TS_in: return contains(r, x, v);
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
    return all_case(s, id == TS_upper);
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
  name = need_str(r, name, "select");
  int id = tok__jinja_test_id(name.u.s.p, name.u.s.n);
  if (id < 0) FAIL("no test named '%.*s'", (int)(name.u.s.n > 60 ? 60 : name.u.s.n), name.u.s.p);
  return id;
}

/* attribute path "a.b" or index, as jinja2's make_attrgetter */
static jv attr_path(jrender *r, jv v, jv attr)
{
  if (attr.t == JV_INT) return getitem_v(r, v, attr);
  attr = need_str(r, attr, "attribute");
  const char *p = attr.u.s.p, *end = p + attr.u.s.n;
  while (p <= end) {
    const char *dot = memchr(p, '.', (size_t)(end - p));
    size_t len = dot ? (size_t)(dot - p) : (size_t)(end - p);
    bool digits = len > 0;
    for (size_t i = 0; i < len; i++) digits &= p[i] >= '0' && p[i] <= '9';
    if (digits) v = getitem_v(r, v, tok__jv_int(strtoll(p, NULL, 10)));
    else v = getitem_v(r, v, tok__jv_str(p, len));
    if (!dot) break;
    p = dot + 1;
  }
  return v;
}

static jv apply_filter(jrender *r, int id, jv v, const args *a, jframe *f);

static int64_t ival(jv v);

static jv as_gen(jv l)
{
  l.tuple = JV_GEN;
  return l;
}

static jv select_like(jrender *r, jv v, const args *a, bool attr_mode, bool keep, jframe *f)
{
  (void)f;
  /* jinja2's select_or_reject starts with `if value:`: None, "" or 0 select nothing */
  if (!tok__jv_truthy(v)) return as_gen(tok__jv_list_new(r, 0));
  const jlist *items = iterate(r, v);
  jvec out = {0};
  size_t base = attr_mode ? 1 : 0;
  jv attr = attr_mode ? arg(a, 0, NULL, tok__jv_undef("selectattr needs an attribute")) : tok__jv_none();
  bool has_test = a->n_pos > base;
  int tid = has_test ? test_by_name(r, a->pos[base]) : -1;
  args targs = {0};
  for (size_t i = base + 1; i < a->n_pos; i++) targs.pos[targs.n_pos++] = a->pos[i];
  for (size_t i = 0; i < items->n; i++) {
    tok__jr_step(r, 1);
    jv x = items->v[i];
    jv probe = attr_mode ? attr_path(r, x, attr) : x;
    bool ok = has_test ? run_test(r, tid, probe, &targs) : tok__jv_truthy(probe);
    if (ok == keep) vec_push(r, &out, x);
  }
  return as_gen(list_from(r, out.v, out.n));
}

static jv to_list(jrender *r, jv v)
{
  const jlist *l = iterate(r, v);
  return list_from(r, l->v, l->n);
}

static jv sort_key(jrender *r, jv x, jv attr, int pair_index, bool case_sensitive)
{
  if (attr.t != JV_NONE) x = attr_path(r, x, attr);
  else if (pair_index >= 0 && x.t == JV_LIST && x.u.l->n == 2) x = x.u.l->v[pair_index];
  if (!case_sensitive && x.t == JV_STR) x = map_case(r, x, 1);
  return x;
}

/* A stable merge sort (Python's sorted is stable, also with reverse=True). */
static void sort_items(jrender *r, jv *v, size_t n, bool reverse, bool case_sensitive, jv attr,
                       int pair_index)
{
  if (n < 2) return;
  jv *keys = tok__jr_alloc(r, n * sizeof(jv)), *tmp = tok__jr_alloc(r, n * sizeof(jv)),
     *tmpk = tok__jr_alloc(r, n * sizeof(jv));
  for (size_t i = 0; i < n; i++) keys[i] = sort_key(r, v[i], attr, pair_index, case_sensitive);
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

static jv json_filter(jrender *r, jv v, const args *a)
{
  jjson_opts o = {.ensure_ascii = false};
  jv ea = arg(a, 0, "ensure_ascii", tok__jv_bool(false));
  jv indent = arg(a, 1, "indent", tok__jv_none());
  jv seps = arg(a, 2, "separators", tok__jv_none());
  jv sk = arg(a, 3, "sort_keys", tok__jv_bool(false));
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

/* Python's str.splitlines() */
static bool line_break(int32_t c)
{
  return c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || c == 0x1c || c == 0x1d ||
         c == 0x1e || c == 0x85 || c == 0x2028 || c == 0x2029;
}

static jv splitlines(jrender *r, jv s, bool keepends)
{
  jvec out = {0};
  const char *p = s.u.s.p;
  size_t n = s.u.s.n, i = 0, st = 0;
  while (i < n) {
    size_t at = i;
    int32_t c = tok__jv_next_cp(p, n, &i);
    if (!line_break(c)) continue;
    if (c == '\r' && i < n && p[i] == '\n') i++;
    vec_push(r, &out, tok__jv_str(p + st, (keepends ? i : at) - st));
    st = i;
  }
  if (st < n) vec_push(r, &out, tok__jv_str(p + st, n - st));
  return list_from(r, out.v, out.n);
}

static jv join_strs(jrender *r, const jv *items, size_t n, jv sep)
{
  jdivert *d = tok__jr_divert_begin(r);
  for (size_t i = 0; i < n; i++) {
    tok__jr_step(r, 1);
    if (i) tok__jr_buf_put(r, r->out, sep.u.s.p, sep.u.s.n);
    tok__jv_str_out(r, r->out, items[i]);
  }
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

/* Markup's own methods (strip, upper, ...) give Markup again */
static jv keep_markup(jv from, jv s)
{
  s.tuple = from.t == JV_STR && from.tuple == JV_MARKUP ? JV_MARKUP : 0;
  return s;
}

static jv apply_filter(jrender *r, int id, jv v, const args *a, jframe *f)
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
  case F_capitalize: return keep_markup(v, map_case(r, tok__jv_to_str(r, v), 3));
  case F_count: case F_length: return tok__jv_int(length_of(r, v));
  case F_d: case F_default: {
    jv def = arg(a, 0, "default_value", tok__jv_str("", 0));
    bool boolean = tok__jv_truthy(arg(a, 1, "boolean", tok__jv_bool(false)));
    if (v.t == JV_UNDEF || (boolean && !tok__jv_truthy(v))) return def;
    return v;
  }
  case F_first: {
    const jlist *l = iterate(r, v);
    return l->n ? l->v[0] : tok__jv_undef("No first item, sequence was empty.");
  }
  case F_last: {
    if (v.t == JV_LIST && v.tuple == JV_GEN) FAIL("'generator' object is not reversible");
    if (v.t != JV_LIST && v.t != JV_STR) v = to_list(r, v);
    const jlist *l = iterate(r, v);
    return l->n ? l->v[l->n - 1] : tok__jv_undef("No last item, sequence was empty.");
  }
  case F_float: {
    if (v.t == JV_UNDEF) fail_undef(r, v); /* float(Undefined) raises in jinja2 */
    jv def = arg(a, 0, "default", tok__jv_float(0));
    if (v.t == JV_FLOAT) return v;
    if (v.t == JV_INT) return tok__jv_float((double)v.u.i);
    if (v.t == JV_BOOL) return tok__jv_float(v.u.b);
    if (v.t == JV_STR) {
      char tmp[64];
      jv t = do_strip(v, tok__jv_none(), true, true);
      if (t.u.s.n && t.u.s.n < sizeof tmp) {
        memcpy(tmp, t.u.s.p, t.u.s.n);
        tmp[t.u.s.n] = 0;
        char *end;
        double d = strtod(tmp, &end);
        if (*end == 0) return tok__jv_float(d);
      }
    }
    return def;
  }
  case F_int: {
    if (v.t == JV_UNDEF) fail_undef(r, v);
    jv def = arg(a, 0, "default", tok__jv_int(0));
    int64_t base = int_arg(r, arg(a, 1, "base", tok__jv_int(10)), "int");
    if (v.t == JV_INT) return v;
    if (v.t == JV_BOOL) return tok__jv_int(v.u.b);
    if (v.t == JV_FLOAT) return isfinite(v.u.f) && fabs(v.u.f) < 9.2e18 ? tok__jv_int((int64_t)v.u.f) : def;
    if (v.t == JV_STR) {
      char tmp[64];
      jv t = do_strip(v, tok__jv_none(), true, true);
      if (t.u.s.n && t.u.s.n < sizeof tmp) {
        memcpy(tmp, t.u.s.p, t.u.s.n);
        tmp[t.u.s.n] = 0;
        char *end;
        errno = 0;
        long long x = strtoll(tmp, &end, (int)base);
        if (*end == 0 && !errno) return tok__jv_int(x);
        double d = strtod(tmp, &end);
        if (*end == 0 && isfinite(d) && fabs(d) < 9.2e18) return tok__jv_int((int64_t)d);
      }
    }
    return def;
  }
  case F_indent: {
    jv width = arg(a, 0, "width", tok__jv_int(4));
    bool first = tok__jv_truthy(arg(a, 1, "first", tok__jv_bool(false)));
    bool blank = tok__jv_truthy(arg(a, 2, "blank", tok__jv_bool(false)));
    jv ind;
    if (width.t == JV_STR) ind = width;
    else {
      int64_t w = int_arg(r, width, "indent");
      if (w < 0) w = 0;
      if (w > 1024) FAIL("indent: width too large");
      char *sp = tok__jr_alloc(r, (size_t)w + 1);
      memset(sp, ' ', (size_t)w);
      ind = tok__jv_str(sp, (size_t)w);
    }
    if (v.t == JV_UNDEF) fail_undef(r, v);
    if (v.t != JV_STR) FAIL("indent: expected a string, got %s", tok__jv_type_name(v)); /* jinja2 fails too */
    jv s = v;
    jv nl = tok__jv_str("\n", 1);
    jv lines = splitlines(r, str_cat(r, s, nl), false);
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
    return first ? str_cat(r, ind, body) : body;
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
    jv sep = arg(a, 0, "d", tok__jv_str("", 0));
    sep = tok__jv_to_str(r, sep);
    jv attr = arg(a, 1, "attribute", tok__jv_none());
    const jlist *l = iterate(r, v);
    if (attr.t != JV_NONE) {
      jv m = tok__jv_list_new(r, l->n);
      for (size_t i = 0; i < l->n; i++) m.u.l->v[i] = attr_path(r, l->v[i], attr);
      l = m.u.l;
    }
    return join_strs(r, l->v, l->n, sep);
  }
  case F_list: return to_list(r, v);
  case F_lower: return keep_markup(v, map_case(r, tok__jv_to_str(r, v), 1));
  case F_upper: return keep_markup(v, map_case(r, tok__jv_to_str(r, v), 0));
  case F_title: return jinja_title(r, tok__jv_to_str(r, v));
  case F_map: {
    if (!tok__jv_truthy(v)) return as_gen(tok__jv_list_new(r, 0)); /* jinja2's do_map: `if value:` */
    const jlist *l = iterate(r, v);
    jv out = tok__jv_list_new(r, l->n);
    jv attr = arg(a, 99, "attribute", tok__jv_none());
    if (attr.t != JV_NONE) {
      jv def = arg(a, 99, "default", tok__jv_undef(NULL));
      for (size_t i = 0; i < l->n; i++) {
        jv x = attr_path(r, l->v[i], attr);
        out.u.l->v[i] = x.t == JV_UNDEF && def.t != JV_UNDEF ? def : x;
      }
      return as_gen(out);
    }
    if (!a->n_pos) FAIL("map: needs a filter name or attribute=");
    jv name = need_str(r, a->pos[0], "map");
    int fid = tok__jinja_filter_id(name.u.s.p, name.u.s.n);
    if (fid < 0) FAIL("map: no filter named '%.*s'", (int)(name.u.s.n > 60 ? 60 : name.u.s.n), name.u.s.p);
    args fa = {0};
    for (size_t i = 1; i < a->n_pos; i++) fa.pos[fa.n_pos++] = a->pos[i];
    for (size_t i = 0; i < l->n; i++) {
      tok__jr_step(r, 1);
      out.u.l->v[i] = apply_filter(r, fid, l->v[i], &fa, f);
    }
    return as_gen(out);
  }
  case F_max: case F_min: {
    const jlist *l = iterate(r, v);
    if (!l->n) return tok__jv_undef("No aggregated item, sequence was empty.");
    jv attr = arg(a, 1, "attribute", tok__jv_none());
    jv best = l->v[0];
    for (size_t i = 1; i < l->n; i++) {
      jv x = attr.t != JV_NONE ? attr_path(r, l->v[i], attr) : l->v[i];
      jv y = attr.t != JV_NONE ? attr_path(r, best, attr) : best;
      int c = tok__jv_cmp(r, x, y);
      if (id == F_max ? c > 0 : c < 0) best = l->v[i];
    }
    return best;
  }
  case F_select: return select_like(r, v, a, false, true, f);
  case F_reject: return select_like(r, v, a, false, false, f);
  case F_selectattr: return select_like(r, v, a, true, true, f);
  case F_rejectattr: return select_like(r, v, a, true, false, f);
  case F_replace: {
    jv s = tok__jv_to_str(r, v);
    int64_t count = int_arg(r, arg(a, 2, "count", tok__jv_int(-1)), "replace");
    return do_replace(r, s, arg(a, 0, "old", tok__jv_undef("replace needs old")),
                      arg(a, 1, "new", tok__jv_undef("replace needs new")), count);
  }
  case F_reverse: {
    if (v.t == JV_STR) return slice_v(r, v, tok__jv_none(), tok__jv_none(), tok__jv_int(-1));
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
    int64_t prec = int_arg(r, arg(a, 0, "precision", tok__jv_int(0)), "round");
    jv method = arg(a, 1, "method", tok__jv_str("common", 6));
    bool common = !(method.t == JV_STR && ((method.u.s.n == 4 && !memcmp(method.u.s.p, "ceil", 4)) ||
                                           (method.u.s.n == 5 && !memcmp(method.u.s.p, "floor", 5))));
    /* round(int, n >= 0) is the int itself in Python */
    if (common && (v.t == JV_INT || v.t == JV_BOOL) && prec >= 0) return tok__jv_int(ival(v));
    if (v.t != JV_INT && v.t != JV_FLOAT && v.t != JV_BOOL) FAIL("type %s doesn't define __round__ method", tok__jv_type_name(v));
    double x = v.t == JV_FLOAT ? v.u.f : (double)ival(v);
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
    /* jinja2's do_format: soft_str(value) % (kwargs or args) */
    if (a->n_pos && a->n_kw) FAIL("can't handle positional and keyword arguments at the same time");
    jv argv;
    if (a->n_kw) {
      jdict *d = tok__jd_new(r, a->n_kw);
      for (size_t k = 0; k < a->n_kw; k++)
        tok__jd_set(r, d, tok__jv_str(a->kw_names[k], strlen(a->kw_names[k])), a->kw[k]);
      argv = (jv){.t = JV_DICT, .u.d = d};
    } else {
      argv = list_from(r, (jv *)a->pos, a->n_pos);
      argv.tuple = 1;
    }
    return tok__py_percent(r, tok__jv_to_str(r, v), argv);
  }
  case F_sum: {
    const jlist *l = iterate(r, v);
    jv attr = arg(a, 0, "attribute", tok__jv_none());
    jv acc = arg(a, 1, "start", tok__jv_int(0));
    for (size_t i = 0; i < l->n; i++) {
      jv x = attr.t != JV_NONE ? attr_path(r, l->v[i], attr) : l->v[i];
      if (acc.t == JV_INT && (x.t == JV_INT || x.t == JV_BOOL)) {
        int64_t y = x.t == JV_INT ? x.u.i : x.u.b, z;
        if (__builtin_add_overflow(acc.u.i, y, &z)) FAIL("integer overflow");
        acc = tok__jv_int(z);
      } else if ((acc.t == JV_INT || acc.t == JV_FLOAT) && (x.t == JV_INT || x.t == JV_FLOAT || x.t == JV_BOOL)) {
        double p = acc.t == JV_INT ? (double)acc.u.i : acc.u.f;
        double q = x.t == JV_INT ? (double)x.u.i : x.t == JV_FLOAT ? x.u.f : x.u.b;
        acc = tok__jv_float(p + q);
      } else {
        FAIL("sum: unsupported operand types %s and %s", tok__jv_type_name(acc), tok__jv_type_name(x));
      }
    }
    return acc;
  }
  case F_tojson: return json_filter(r, v, a);
  case F_trim: {
    jv s = tok__jv_to_str(r, v);
    jv chars = arg(a, 0, "chars", tok__jv_none());
    return keep_markup(v, do_strip(s, chars, true, true));
  }
  case F_unique: {
    const jlist *l = iterate(r, v);
    jvec out = {0};
    for (size_t i = 0; i < l->n; i++) {
      bool seen = false;
      for (size_t k = 0; k < out.n && !seen; k++) {
        tok__jr_step(r, 1);
        seen = tok__jv_eq(r, out.v[k], l->v[i]);
      }
      if (!seen) vec_push(r, &out, l->v[i]);
    }
    return as_gen(list_from(r, out.v, out.n));
  }
  case F_wordcount: {
    jv parts = do_split(r, tok__jv_to_str(r, v), tok__jv_none(), -1, false);
    return tok__jv_int((int64_t)parts.u.l->n);
  }
  case F_dictsort: {
    if (v.t != JV_DICT) FAIL("dictsort: expected a mapping");
    bool by_value = false;
    jv by = arg(a, 1, "by", tok__jv_str("key", 3));
    if (by.t == JV_STR && by.u.s.n == 5 && !memcmp(by.u.s.p, "value", 5)) by_value = true;
    args none = {0};
    jv items = apply_filter(r, F_items, v, &none, f);
    items.tuple = 0; /* sorted(): a list */
    sort_items(r, items.u.l->v, items.u.l->n, tok__jv_truthy(arg(a, 2, "reverse", tok__jv_bool(false))),
               tok__jv_truthy(arg(a, 0, "case_sensitive", tok__jv_bool(false))), tok__jv_none(), by_value);
    return items;
  }
  case F_sort: {
    jv l = to_list(r, v);
    sort_items(r, l.u.l->v, l.u.l->n, tok__jv_truthy(arg(a, 0, "reverse", tok__jv_bool(false))),
               tok__jv_truthy(arg(a, 1, "case_sensitive", tok__jv_bool(false))),
               arg(a, 2, "attribute", tok__jv_none()), -1);
    return l;
  }
  }
  FAIL("filter not implemented");
}

/* ---- calls ------------------------------------------------------------------------ */
static jv call_macro(jrender *r, const jnode *m, jframe *scope, const args *a)
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

static jv call_method(jrender *r, int id, jv self, const args *a);

static jv call(jrender *r, jv fn, const args *a)
{
  if (fn.t == JV_UNDEF) fail_undef(r, fn);
  if (fn.t != JV_FUNC) FAIL("'%s' object is not callable", tok__jv_type_name(fn));
  const jfunc *fx = fn.u.fn;
  if (fx->macro) return call_macro(r, fx->macro, fx->scope, a);
  switch (fx->id) {
  case B_RANGE: {
    int64_t start = 0, stop, step = 1;
    if (a->n_pos == 1) stop = int_arg(r, a->pos[0], "range");
    else if (a->n_pos >= 2) {
      start = int_arg(r, a->pos[0], "range");
      stop = int_arg(r, a->pos[1], "range");
      if (a->n_pos >= 3) step = int_arg(r, a->pos[2], "range");
    } else FAIL("range expected at least 1 argument");
    if (!step) FAIL("range() arg 3 must not be zero");
    jvec out = {0};
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      tok__jr_step(r, 1);
      vec_push(r, &out, tok__jv_int(i));
    }
    return list_from(r, out.v, out.n);
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
    jv msg = tok__jv_to_str(r, arg(a, 0, "message", tok__jv_str("", 0)));
    FAIL("%.*s", (int)(msg.u.s.n > 280 ? 280 : msg.u.s.n), msg.u.s.p);
  }
  case B_STRFTIME: {
    jv fmt = need_str(r, arg(a, 0, "format", tok__jv_undef("strftime_now needs a format")), "strftime_now");
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
    return call_method(r, fx->id, fx->self, a);
  }
}

static bool starts_or_ends(jrender *r, jv s, jv x, bool ends)
{
  if (x.t == JV_LIST && x.tuple) {
    for (size_t i = 0; i < x.u.l->n; i++)
      if (starts_or_ends(r, s, x.u.l->v[i], ends)) return true;
    return false;
  }
  x = need_str(r, x, ends ? "endswith" : "startswith");
  if (x.u.s.n > s.u.s.n) return false;
  return memcmp(ends ? s.u.s.p + s.u.s.n - x.u.s.n : s.u.s.p, x.u.s.p, x.u.s.n) == 0;
}

static bool all_cp(jv s, int kind)
{
  if (!s.u.s.n) return false;
  for (size_t i = 0; i < s.u.s.n;) {
    int32_t c = tok__jv_next_cp(s.u.s.p, s.u.s.n, &i);
    utf8proc_category_t cat = utf8proc_category(c);
    bool letter = cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
    bool digit = cat == UTF8PROC_CATEGORY_ND;
    if (kind == 0 && !digit) return false;
    if (kind == 1 && !letter) return false;
    if (kind == 2 && !tok__jv_py_space(c)) return false;
    if (kind == 3 && !letter && !digit && cat != UTF8PROC_CATEGORY_NL && cat != UTF8PROC_CATEGORY_NO) return false;
  }
  return true;
}

/* Steps a string method costs beyond its call: by the bytes it reads. Character-class
 * and case methods look every code point up (~7 ns a byte here, a step's worth); the
 * others search with memchr/memmem (a step per 64 bytes). startswith, endswith and the
 * strips read only what they compare. */
static uint64_t method_cost(int id, jv self)
{
  if (self.t != JV_STR) return 0;
  switch (id) {
  case M_ISDIGIT: case M_ISALPHA: case M_ISSPACE: case M_ISALNUM: case M_ISUPPER:
  case M_ISLOWER: case M_UPPER: case M_LOWER: case M_TITLE: case M_CAPITALIZE:
  case M_SPLITLINES:
    return self.u.s.n;
  case M_STARTSWITH: case M_ENDSWITH: case M_STRIP: case M_LSTRIP: case M_RSTRIP:
    return 0;
  default:
    return self.u.s.n / 64;
  }
}

static jv call_method(jrender *r, int id, jv self, const args *a)
{
  jv none = tok__jv_none();
  tok__jr_step(r, method_cost(id, self));
  switch (id) {
  case M_STARTSWITH: return tok__jv_bool(starts_or_ends(r, self, arg(a, 0, NULL, tok__jv_undef("startswith needs an argument")), false));
  case M_ENDSWITH: return tok__jv_bool(starts_or_ends(r, self, arg(a, 0, NULL, tok__jv_undef("endswith needs an argument")), true));
  case M_STRIP: return keep_markup(self, do_strip(self, arg(a, 0, NULL, none), true, true));
  case M_LSTRIP: return keep_markup(self, do_strip(self, arg(a, 0, NULL, none), true, false));
  case M_RSTRIP: return keep_markup(self, do_strip(self, arg(a, 0, NULL, none), false, true));
  case M_SPLIT: case M_RSPLIT:
    return do_split(r, self, arg(a, 0, "sep", none),
                    int_arg(r, arg(a, 1, "maxsplit", tok__jv_int(-1)), "split"), id == M_RSPLIT);
  case M_UPPER: return keep_markup(self, map_case(r, self, 0));
  case M_LOWER: return keep_markup(self, map_case(r, self, 1));
  case M_TITLE: return map_case(r, self, 2);
  case M_CAPITALIZE: return map_case(r, self, 3);
  case M_REPLACE:
    return do_replace(r, self, arg(a, 0, NULL, tok__jv_undef("replace needs old")),
                      arg(a, 1, NULL, tok__jv_undef("replace needs new")),
                      int_arg(r, arg(a, 2, "count", tok__jv_int(-1)), "replace"));
  case M_FIND: case M_RFIND: {
    jv x = need_str(r, arg(a, 0, NULL, tok__jv_undef("find needs an argument")), "find");
    const char *hit = NULL;
    if (id == M_FIND) hit = find_bytes(self.u.s.p, self.u.s.n, x.u.s.p, x.u.s.n);
    else if (x.u.s.n <= self.u.s.n)
      for (size_t k = self.u.s.n - x.u.s.n + 1; k-- > 0;)
        if (memcmp(self.u.s.p + k, x.u.s.p, x.u.s.n) == 0) {
          hit = self.u.s.p + k;
          break;
        }
    return tok__jv_int(hit ? (int64_t)tok__jv_str_chars(self.u.s.p, (size_t)(hit - self.u.s.p)) : -1);
  }
  case M_COUNT: {
    jv x = need_str(r, arg(a, 0, NULL, tok__jv_undef("count needs an argument")), "count");
    if (!x.u.s.n) return tok__jv_int((int64_t)tok__jv_str_chars(self.u.s.p, self.u.s.n) + 1);
    int64_t c = 0;
    for (size_t i = 0; i < self.u.s.n;) {
      const char *hit = find_bytes(self.u.s.p + i, self.u.s.n - i, x.u.s.p, x.u.s.n);
      if (!hit) break;
      c++;
      i = (size_t)(hit - self.u.s.p) + x.u.s.n;
    }
    return tok__jv_int(c);
  }
  case M_JOIN: {
    jv it = arg(a, 0, NULL, tok__jv_undef("join needs an argument"));
    const jlist *l = iterate(r, it);
    for (size_t i = 0; i < l->n; i++)
      if (l->v[i].t != JV_STR) FAIL("sequence item %zu: expected str instance, %s found", i, tok__jv_type_name(l->v[i]));
    return join_strs(r, l->v, l->n, self);
  }
  case M_SPLITLINES: return splitlines(r, self, tok__jv_truthy(arg(a, 0, "keepends", tok__jv_bool(false))));
  case M_ISDIGIT: return tok__jv_bool(all_cp(self, 0));
  case M_ISALPHA: return tok__jv_bool(all_cp(self, 1));
  case M_ISSPACE: return tok__jv_bool(all_cp(self, 2));
  case M_ISALNUM: return tok__jv_bool(all_cp(self, 3));
  case M_ISUPPER: return tok__jv_bool(all_case(self, true));
  case M_ISLOWER: return tok__jv_bool(all_case(self, false));
  case M_FORMAT: FAIL("str.format() is not supported by tokd's chat templates");
  case M_ITEMS: {
    args none_args = {0};
    jv items = apply_filter(r, F_items, self, &none_args, NULL);
    items.tuple = 0; /* dict_items has a length */
    return items;
  }
  case M_KEYS: return list_from(r, self.u.d->k, self.u.d->n);
  case M_VALUES: return list_from(r, self.u.d->v, self.u.d->n);
  case M_GET: {
    const jv *v = tok__jd_get(r, self.u.d, arg(a, 0, NULL, tok__jv_undef("get needs a key")));
    return v ? *v : arg(a, 1, NULL, tok__jv_none());
  }
  case M_LCOUNT: case M_LINDEX: {
    jv x = arg(a, 0, NULL, tok__jv_undef("count/index needs an argument"));
    int64_t c = 0;
    for (size_t i = 0; i < self.u.l->n; i++) {
      tok__jr_step(r, 1);
      if (tok__jv_eq(r, self.u.l->v[i], x)) {
        if (id == M_LINDEX) return tok__jv_int((int64_t)i);
        c++;
      }
    }
    if (id == M_LINDEX) FAIL("list.index(x): x not in list");
    return tok__jv_int(c);
  }
  case M_LCOPY: return list_from(r, self.u.l->v, self.u.l->n);
  default:
    FAIL("access to a method that modifies a value is unsafe (immutable sandbox)");
  }
}

/* ---- operators -------------------------------------------------------------------- */
static bool numeric(jv v) { return v.t == JV_INT || v.t == JV_FLOAT || v.t == JV_BOOL; }
static double fval(jv v) { return v.t == JV_FLOAT ? v.u.f : v.t == JV_INT ? (double)v.u.i : v.u.b; }
static int64_t ival(jv v) { return v.t == JV_INT ? v.u.i : v.u.b; }

static const char *op_sym(int op)
{
  static const char *const s[] = {"", "+", "-", "*", "/", "//", "%", "**"};
  return s[op];
}

static jv binop(jrender *r, int op, jv a, jv b)
{
  if (a.t == JV_UNDEF) fail_undef(r, a);
  if (b.t == JV_UNDEF) fail_undef(r, b);
  if (numeric(a) && numeric(b)) {
    bool fl = a.t == JV_FLOAT || b.t == JV_FLOAT;
    if (!fl && op != OP_DIV) {
      int64_t x = ival(a), y = ival(b), z;
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
      jv s = str_cat(r, tok__markup_escape(r, a), tok__markup_escape(r, b));
      s.tuple = JV_MARKUP;
      return s;
    }
    if (r->out->limit && a.u.s.n + b.u.s.n > r->out->limit)
      tok__jr_fail(r, TOK_ELIMIT, "string longer than the output limit");
    tok__jr_step(r, (a.u.s.n + b.u.s.n) / 4096);
    return str_cat(r, a, b);
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
    int64_t k = ival(b) < 0 ? 0 : ival(b);
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
    return binop(r, op, b, a);
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
  case CMP_IN: return contains(r, b, a);
  case CMP_NOTIN: return !contains(r, b, a);
  }
  if (a.t == JV_UNDEF) fail_undef(r, a);
  if (b.t == JV_UNDEF) fail_undef(r, b);
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
  case N_ATTR: return getattr_v(r, eval(r, f, n->a), n->name, strlen(n->name));
  case N_ITEM: return getitem_v(r, eval(r, f, n->a), eval(r, f, n->b));
  case N_SLICE: {
    jv obj = eval(r, f, n->a);
    jv s = n->b ? eval(r, f, n->b) : tok__jv_none();
    jv e = n->c ? eval(r, f, n->c) : tok__jv_none();
    jv st = n->d ? eval(r, f, n->d) : tok__jv_none();
    return slice_v(r, obj, s, e, st);
  }
  case N_CALL: {
    jv fn = eval(r, f, n->a);
    args a;
    eval_args(r, f, n, &a);
    return call(r, fn, &a);
  }
  case N_BLOCK: return r->block_text;
  case N_FILTER: {
    if (n->id < 0) FAIL("No filter named '%s' found.", n->name);
    jv v = eval(r, f, n->a);
    args a;
    eval_args(r, f, n, &a);
    return apply_filter(r, n->id, v, &a, f);
  }
  case N_TEST: {
    if (n->id < 0) FAIL("No test named '%s' found.", n->name);
    jv v = eval(r, f, n->a);
    args a;
    eval_args(r, f, n, &a);
    bool t = run_test(r, n->id, v, &a);
    return tok__jv_bool(n->op ? !t : t);
  }
  case N_NEG: case N_POS: {
    jv v = eval(r, f, n->a);
    if (v.t == JV_UNDEF) fail_undef(r, v);
    if (v.t == JV_INT || v.t == JV_BOOL) {
      int64_t x = ival(v);
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
  case N_BIN: return binop(r, n->op, eval(r, f, n->a), eval(r, f, n->b));
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
  const jlist *items = iterate(r, seq);
  if (n->d) { /* the loop filter runs before loop.* is computed */
    jvec kept = {0};
    for (size_t i = 0; i < items->n; i++) {
      jframe *tf = frame_new(r, f);
      bind_targets(r, tf, n, items->v[i]);
      if (tok__jv_truthy(eval(r, tf, n->d))) vec_push(r, &kept, items->v[i]);
    }
    items = list_from(r, kept.v, kept.n).u.l;
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
