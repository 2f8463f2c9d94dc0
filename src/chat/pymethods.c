/*
 * pymethods.c — the methods of Python's str, dict and list that templates call
 * (message.content.strip(), tools.items(), ...), and the string operations the filters
 * share with them (strip, split, replace, case mapping, splitlines, join).
 *
 * They follow CPython's str methods on code points, not bytes: whitespace is str.isspace's,
 * case mapping is utf8proc's simple mapping (Python's full mapping differs for a few
 * characters such as 'ß'), and find's offsets are counted in characters. Methods that
 * change a value (append, update, pop, ...) are refused, as jinja2's immutable sandbox
 * refuses them; a Markup's strip and case methods give Markup again.
 */
#include <stdio.h>
#include <string.h>

#include <utf8proc.h>

#include "chat/jinja_int.h"

struct method {
  const char *name;
  int id;
};
static const struct method STR_METHODS[] = {
    {"startswith", M_STARTSWITH}, {"endswith", M_ENDSWITH}, {"strip", M_STRIP},
    {"lstrip", M_LSTRIP}, {"rstrip", M_RSTRIP}, {"split", M_SPLIT}, {"rsplit", M_RSPLIT},
    {"upper", M_UPPER}, {"lower", M_LOWER}, {"title", M_TITLE}, {"capitalize", M_CAPITALIZE},
    {"replace", M_REPLACE}, {"find", M_FIND}, {"rfind", M_RFIND}, {"count", M_COUNT},
    {"join", M_JOIN}, {"splitlines", M_SPLITLINES}, {"isdigit", M_ISDIGIT},
    {"isalpha", M_ISALPHA}, {"isspace", M_ISSPACE}, {"isalnum", M_ISALNUM},
    {"isupper", M_ISUPPER}, {"islower", M_ISLOWER}, {"format", M_FORMAT},
};
static const struct method DICT_METHODS[] = {
    {"items", M_ITEMS}, {"keys", M_KEYS}, {"values", M_VALUES}, {"get", M_GET},
    {"pop", M_UNSAFE}, {"popitem", M_UNSAFE}, {"update", M_UNSAFE}, {"clear", M_UNSAFE},
    {"setdefault", M_UNSAFE}, {"copy", M_UNSAFE}, {"fromkeys", M_UNSAFE},
};
static const struct method LIST_METHODS[] = {
    {"count", M_LCOUNT}, {"index", M_LINDEX}, {"copy", M_LCOPY}, {"append", M_UNSAFE},
    {"extend", M_UNSAFE}, {"insert", M_UNSAFE}, {"pop", M_UNSAFE}, {"remove", M_UNSAFE},
    {"clear", M_UNSAFE}, {"sort", M_UNSAFE}, {"reverse", M_UNSAFE},
};

static int method_id(const struct method *t, size_t n, const char *name, size_t name_len)
{
  for (size_t i = 0; i < n; i++)
    if (strlen(t[i].name) == name_len && !memcmp(t[i].name, name, name_len)) return t[i].id;
  return -1;
}

jv tok__py_method(jrender *r, jv obj, const char *name, size_t name_len)
{
  int id = -1;
  if (obj.t == JV_STR) id = method_id(STR_METHODS, sizeof STR_METHODS / sizeof *STR_METHODS, name, name_len);
  else if (obj.t == JV_DICT) id = method_id(DICT_METHODS, sizeof DICT_METHODS / sizeof *DICT_METHODS, name, name_len);
  else if (obj.t == JV_LIST && obj.tuple != JV_GEN) {
    id = method_id(LIST_METHODS, sizeof LIST_METHODS / sizeof *LIST_METHODS, name, name_len);
    if (obj.tuple && id != M_LCOUNT && id != M_LINDEX) id = -1; /* a tuple has only these two */
  }
  return id < 0 ? tok__jv_undef(NULL) : tok__jv_func(r, id, obj);
}

typedef int32_t (*case_fn)(int32_t);
static int32_t up1(int32_t c) { return utf8proc_toupper(c); }
static int32_t lo1(int32_t c) { return utf8proc_tolower(c); }
static int32_t ti1(int32_t c) { return utf8proc_totitle(c); }

jv tok__py_case(jrender *r, jv s, int mode)
{
  char *o = tok__jr_alloc(r, s.u.s.n * 2 + 4);
  size_t n = 0, cap = s.u.s.n * 2 + 4;
  bool prev_cased = false, first = true;
  for (size_t i = 0; i < s.u.s.n;) {
    int32_t c = tok__jv_next_cp(s.u.s.p, s.u.s.n, &i);
    case_fn f;
    if (mode == PY_UPPER) f = up1;
    else if (mode == PY_LOWER) f = lo1;
    else if (mode == PY_CAPITALIZE) f = first ? ti1 : lo1;
    else f = prev_cased ? lo1 : ti1;
    int32_t m = f(c);
    /* Python's title(): a letter after a cased letter is lowered, else titled */
    const utf8proc_property_t *pr = utf8proc_get_property(c);
    bool cased = pr->category == UTF8PROC_CATEGORY_LU || pr->category == UTF8PROC_CATEGORY_LL ||
                 pr->category == UTF8PROC_CATEGORY_LT;
    prev_cased = cased;
    first = false;
    if (n + 4 > cap) {
      o = tok__jr_grow(r, o, n, cap * 2, 1);
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

jv tok__py_strip(jv s, jv chars, bool left, bool right)
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

jv tok__py_split(jrender *r, jv s, jv sep, int64_t maxsplit, bool from_right)
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
          jv rest = tok__py_strip(tok__jv_str(p + i, e - i), tok__jv_none(), false, true);
          tok__jvec_push(r, &out, rest);
          break;
        }
        size_t st = i;
        while (i < n && (k = i, !tok__jv_py_space(tok__jv_next_cp(p, n, &k)))) i = k;
        tok__jvec_push(r, &out, tok__jv_str(p + st, i - st));
        tok__jr_step(r, 1);
      }
    } else {
      jv t = tok__py_strip(s, tok__jv_none(), false, true);
      jvec rev = {0};
      size_t e = t.u.s.n;
      const char *q = t.u.s.p;
      while (e > 0) {
        if (maxsplit >= 0 && (int64_t)rev.n == maxsplit) {
          tok__jvec_push(r, &rev, tok__py_strip(tok__jv_str(q, e), tok__jv_none(), true, false));
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
        tok__jvec_push(r, &rev, tok__jv_str(q + st, e - st));
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
      for (size_t i = rev.n; i-- > 0;) tok__jvec_push(r, &out, rev.v[i]);
    }
    return tok__jv_list_from(r, out.v, out.n);
  }
  sep = tok__jv_need_str(r, sep, "split");
  if (!sep.u.s.n) FAIL("empty separator");
  if (!from_right) {
    size_t i = 0;
    for (;;) {
      const char *hit = (maxsplit >= 0 && (int64_t)out.n == maxsplit)
                            ? NULL : tok__find_bytes(p + i, n - i, sep.u.s.p, sep.u.s.n);
      if (!hit) {
        tok__jvec_push(r, &out, tok__jv_str(p + i, n - i));
        break;
      }
      tok__jvec_push(r, &out, tok__jv_str(p + i, (size_t)(hit - (p + i))));
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
        tok__jvec_push(r, &rev, tok__jv_str(p, e));
        break;
      }
      size_t after = (size_t)(hit - p) + sep.u.s.n;
      tok__jvec_push(r, &rev, tok__jv_str(p + after, e - after));
      e = (size_t)(hit - p);
      tok__jr_step(r, 1);
    }
    for (size_t i = rev.n; i-- > 0;) tok__jvec_push(r, &out, rev.v[i]);
  }
  return tok__jv_list_from(r, out.v, out.n);
}

jv tok__py_replace(jrender *r, jv s, jv old, jv new_, int64_t count)
{
  old = tok__jv_need_str(r, old, "replace");
  new_ = tok__jv_need_str(r, new_, "replace");
  jvec parts = {0};
  const char *p = s.u.s.p;
  size_t n = s.u.s.n, i = 0;
  int64_t done = 0;
  if (!old.u.s.n) { /* Python inserts new between every character */
    size_t cps = tok__jv_str_chars(p, n);
    for (size_t k = 0; k <= cps; k++) {
      if (count >= 0 && done >= count) {
        tok__jvec_push(r, &parts, tok__jv_str(p + i, n - i));
        i = n;
        break;
      }
      tok__jvec_push(r, &parts, new_);
      done++;
      if (i < n) {
        size_t st = i;
        tok__jv_next_cp(p, n, &i);
        tok__jvec_push(r, &parts, tok__jv_str(p + st, i - st));
      }
      tok__jr_step(r, 1);
    }
  } else {
    for (;;) {
      const char *hit = (count >= 0 && done >= count) ? NULL : tok__find_bytes(p + i, n - i, old.u.s.p, old.u.s.n);
      if (!hit) {
        tok__jvec_push(r, &parts, tok__jv_str(p + i, n - i));
        break;
      }
      tok__jvec_push(r, &parts, tok__jv_str(p + i, (size_t)(hit - (p + i))));
      tok__jvec_push(r, &parts, new_);
      done++;
      i = (size_t)(hit - p) + old.u.s.n;
      tok__jr_step(r, 1);
    }
  }
  return tok__jv_str_concat(r, parts.v, parts.n);
}

bool tok__py_is_case(jv v, bool upper)
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

/* Python's str.splitlines() */
static bool line_break(int32_t c)
{
  return c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || c == 0x1c || c == 0x1d ||
         c == 0x1e || c == 0x85 || c == 0x2028 || c == 0x2029;
}

jv tok__py_splitlines(jrender *r, jv s, bool keepends)
{
  jvec out = {0};
  const char *p = s.u.s.p;
  size_t n = s.u.s.n, i = 0, st = 0;
  while (i < n) {
    size_t at = i;
    int32_t c = tok__jv_next_cp(p, n, &i);
    if (!line_break(c)) continue;
    if (c == '\r' && i < n && p[i] == '\n') i++;
    tok__jvec_push(r, &out, tok__jv_str(p + st, (keepends ? i : at) - st));
    st = i;
  }
  if (st < n) tok__jvec_push(r, &out, tok__jv_str(p + st, n - st));
  return tok__jv_list_from(r, out.v, out.n);
}

jv tok__py_join(jrender *r, const jv *items, size_t n, jv sep)
{
  jdivert *d = tok__jr_divert_begin(r);
  for (size_t i = 0; i < n; i++) {
    tok__jr_step(r, 1);
    if (i) tok__jr_buf_put(r, r->out, sep.u.s.p, sep.u.s.n);
    tok__jv_str_out(r, r->out, items[i]);
  }
  return tok__jr_divert_end(r, d);
}

static bool starts_or_ends(jrender *r, jv s, jv x, bool ends)
{
  if (x.t == JV_LIST && x.tuple) {
    for (size_t i = 0; i < x.u.l->n; i++)
      if (starts_or_ends(r, s, x.u.l->v[i], ends)) return true;
    return false;
  }
  x = tok__jv_need_str(r, x, ends ? "endswith" : "startswith");
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

jv tok__py_call_method(jrender *r, int id, jv self, const jargs *a)
{
  jv none = tok__jv_none();
  tok__jr_step(r, method_cost(id, self));
  switch (id) {
  case M_STARTSWITH: return tok__jv_bool(starts_or_ends(r, self, tok__jarg(a, 0, NULL, tok__jv_undef("startswith needs an argument")), false));
  case M_ENDSWITH: return tok__jv_bool(starts_or_ends(r, self, tok__jarg(a, 0, NULL, tok__jv_undef("endswith needs an argument")), true));
  case M_STRIP: return tok__jv_keep_markup(self, tok__py_strip(self, tok__jarg(a, 0, NULL, none), true, true));
  case M_LSTRIP: return tok__jv_keep_markup(self, tok__py_strip(self, tok__jarg(a, 0, NULL, none), true, false));
  case M_RSTRIP: return tok__jv_keep_markup(self, tok__py_strip(self, tok__jarg(a, 0, NULL, none), false, true));
  case M_SPLIT: case M_RSPLIT:
    return tok__py_split(r, self, tok__jarg(a, 0, "sep", none),
                    tok__jarg_int(r, tok__jarg(a, 1, "maxsplit", tok__jv_int(-1)), "split"), id == M_RSPLIT);
  case M_UPPER: return tok__jv_keep_markup(self, tok__py_case(r, self, PY_UPPER));
  case M_LOWER: return tok__jv_keep_markup(self, tok__py_case(r, self, PY_LOWER));
  case M_TITLE: return tok__py_case(r, self, PY_TITLE);
  case M_CAPITALIZE: return tok__py_case(r, self, PY_CAPITALIZE);
  case M_REPLACE:
    return tok__py_replace(r, self, tok__jarg(a, 0, NULL, tok__jv_undef("replace needs old")),
                      tok__jarg(a, 1, NULL, tok__jv_undef("replace needs new")),
                      tok__jarg_int(r, tok__jarg(a, 2, "count", tok__jv_int(-1)), "replace"));
  case M_FIND: case M_RFIND: {
    jv x = tok__jv_need_str(r, tok__jarg(a, 0, NULL, tok__jv_undef("find needs an argument")), "find");
    const char *hit = NULL;
    if (id == M_FIND) hit = tok__find_bytes(self.u.s.p, self.u.s.n, x.u.s.p, x.u.s.n);
    else if (x.u.s.n <= self.u.s.n)
      for (size_t k = self.u.s.n - x.u.s.n + 1; k-- > 0;)
        if (memcmp(self.u.s.p + k, x.u.s.p, x.u.s.n) == 0) {
          hit = self.u.s.p + k;
          break;
        }
    return tok__jv_int(hit ? (int64_t)tok__jv_str_chars(self.u.s.p, (size_t)(hit - self.u.s.p)) : -1);
  }
  case M_COUNT: {
    jv x = tok__jv_need_str(r, tok__jarg(a, 0, NULL, tok__jv_undef("count needs an argument")), "count");
    if (!x.u.s.n) return tok__jv_int((int64_t)tok__jv_str_chars(self.u.s.p, self.u.s.n) + 1);
    int64_t c = 0;
    for (size_t i = 0; i < self.u.s.n;) {
      const char *hit = tok__find_bytes(self.u.s.p + i, self.u.s.n - i, x.u.s.p, x.u.s.n);
      if (!hit) break;
      c++;
      i = (size_t)(hit - self.u.s.p) + x.u.s.n;
    }
    return tok__jv_int(c);
  }
  case M_JOIN: {
    jv it = tok__jarg(a, 0, NULL, tok__jv_undef("join needs an argument"));
    const jlist *l = tok__jv_iterate(r, it);
    for (size_t i = 0; i < l->n; i++)
      if (l->v[i].t != JV_STR) FAIL("sequence item %zu: expected str instance, %s found", i, tok__jv_type_name(l->v[i]));
    return tok__py_join(r, l->v, l->n, self);
  }
  case M_SPLITLINES: return tok__py_splitlines(r, self, tok__jv_truthy(tok__jarg(a, 0, "keepends", tok__jv_bool(false))));
  case M_ISDIGIT: return tok__jv_bool(all_cp(self, 0));
  case M_ISALPHA: return tok__jv_bool(all_cp(self, 1));
  case M_ISSPACE: return tok__jv_bool(all_cp(self, 2));
  case M_ISALNUM: return tok__jv_bool(all_cp(self, 3));
  case M_ISUPPER: return tok__jv_bool(tok__py_is_case(self, true));
  case M_ISLOWER: return tok__jv_bool(tok__py_is_case(self, false));
  case M_FORMAT: FAIL("str.format() is not supported by tokd's chat templates");
  case M_ITEMS: {
    jargs none_args = {0};
    jv items = tok__jr_filter(r, F_items, self, &none_args);
    items.tuple = 0; /* dict_items has a length */
    return items;
  }
  case M_KEYS: return tok__jv_list_from(r, self.u.d->k, self.u.d->n);
  case M_VALUES: return tok__jv_list_from(r, self.u.d->v, self.u.d->n);
  case M_GET: {
    const jv *v = tok__jd_get(r, self.u.d, tok__jarg(a, 0, NULL, tok__jv_undef("get needs a key")));
    return v ? *v : tok__jarg(a, 1, NULL, tok__jv_none());
  }
  case M_LCOUNT: case M_LINDEX: {
    jv x = tok__jarg(a, 0, NULL, tok__jv_undef("count/index needs an argument"));
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
  case M_LCOPY: return tok__jv_list_from(r, self.u.l->v, self.u.l->n);
  default:
    FAIL("access to a method that modifies a value is unsafe (immutable sandbox)");
  }
}
