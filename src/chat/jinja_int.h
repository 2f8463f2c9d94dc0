/*
 * jinja_int.h — internals shared by the chat module's files: the value model, the
 * per-render arena and error exit, the template tree.
 *
 * Values follow Python's, because the reference renderer is Python jinja2: None, bool,
 * int (64-bit here; Python's are unbounded — overflow is an error, never a wrong number),
 * float, str (UTF-8, counted by code points where Python counts characters), list and
 * tuple, dict (insertion-ordered), plus jinja2's Undefined, namespace(), the loop object,
 * macros and bound methods. Everything a render makes lives in one arena with a byte cap;
 * a loop releases each iteration's part of it (eval.c, "loop scopes") and the rest is
 * released at once when the render ends; errors leave the render through a longjmp to its entry, so no
 * partial state outlives a failed render. Values are immutable once built (transformers
 * renders in jinja2's immutable sandbox), except a namespace's attributes.
 */
#ifndef TOK_JINJA_INT_H
#define TOK_JINJA_INT_H

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "tok_chat.h"

/* ---- arena ---------------------------------------------------------------------- */
typedef struct jchunk {
  struct jchunk *next;
  size_t used, cap;
  _Alignas(16) unsigned char data[];
} jchunk;

typedef struct jarena {
  jchunk *head;
  jchunk *spare; /* one released chunk kept for the next scope (not counted in total) */
  size_t total;  /* bytes allocated in chunks */
  size_t peak;   /* the most total has been */
  size_t limit;  /* 0: none */
} jarena;

/* A point in an arena's allocations. Releasing to it frees everything allocated since, so
 * a loop iteration's temporaries die with it (eval.c copies out what escapes). */
typedef struct jmark {
  jchunk *head;
  size_t used;
  size_t total; /* a->total then */
} jmark;

void *tok__ja_alloc_raw(jarena *a, size_t n); /* NULL past the limit or out of memory */
void tok__ja_free(jarena *a);
jmark tok__ja_mark(const jarena *a);
void tok__ja_release(jarena *a, jmark m);
/* true when p lies in memory allocated since m ({NULL, 0}: anywhere in the arena) */
bool tok__ja_since(const jarena *a, jmark m, const void *p);
size_t tok__ja_bytes_since(const jarena *a, jmark m); /* about what was allocated since m */
/* An array that is full, grown: a new block of cap items of size bytes, the n items of old
 * copied to it (old stays where it is until the arena lets it go). NULL as ja_alloc_raw. */
void *tok__ja_grow(jarena *a, const void *old, size_t n, size_t cap, size_t size);

/* ---- values --------------------------------------------------------------------- */
typedef enum {
  JV_UNDEF,
  JV_NONE,
  JV_BOOL,
  JV_INT,
  JV_FLOAT,
  JV_STR,
  JV_LIST,
  JV_DICT,
  JV_NS,
  JV_LOOP,
  JV_FUNC,
} tok__jv_type;

/* jinja2's map, select, reject, selectattr, rejectattr, unique, items and reverse give
 * generators, not lists: always true, no len(), no subscripts, not printable (Python prints
 * an address). tokd keeps their items and those rules; `| list` makes a list. */
#define JV_GEN 2
/* JV_STR with tuple == JV_MARKUP: markupsafe's Markup (from |safe, |escape); see pyformat.c */
#define JV_MARKUP 1

typedef struct jlist jlist;
typedef struct jdict jdict;
typedef struct jfunc jfunc;
typedef struct jloop jloop;

typedef struct jv {
  uint8_t t;
  uint8_t tuple; /* JV_LIST: 1 a tuple (printed with parentheses), JV_GEN a generator */
  union {
    bool b;
    int64_t i;
    double f;
    struct {
      const char *p; /* JV_STR: the bytes; JV_UNDEF: the message an error would give */
      size_t n;
    } s;
    jlist *l;
    jdict *d;
    jfunc *fn;
    jloop *loop;
  } u;
} jv;

struct jlist {
  size_t n;
  jv *v;
  bool group; /* a tuple groupby made: (grouper, list), also by those names */
};

struct jdict {
  size_t n, cap;
  jv *k, *v;
};

struct jloop {
  const jlist *items;
  size_t i;
};

struct jnode;
typedef struct jfunc {
  int id;                      /* a builtin or method, or -1 for a macro */
  jv self;                     /* bound method: the object */
  const struct jnode *macro;   /* a macro's definition */
  struct jframe *scope;        /* a macro: the scope it was defined in (a closure) */
} jfunc;

/* ---- operators, filters and tests (the parser resolves them, the evaluator runs them) */
enum { OP_ADD = 1, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW };
enum { CMP_EQ = 1, CMP_NE, CMP_LT, CMP_LE, CMP_GT, CMP_GE, CMP_IN, CMP_NOTIN };

#define JINJA_FILTERS(X)                                                                    \
  X(abs) X(capitalize) X(count) X(d) X(default) X(first) X(float) X(indent) X(int)         \
  X(items) X(join) X(last) X(length) X(list) X(lower) X(map) X(max) X(min) X(reject)        \
  X(rejectattr) X(replace) X(reverse) X(round) X(safe) X(select) X(selectattr) X(string)    \
  X(sum) X(title) X(tojson) X(trim) X(unique) X(upper) X(wordcount) X(dictsort) X(sort)     \
  X(e) X(escape) X(forceescape) X(format) X(attr) X(batch) X(center) X(filesizeformat)       \
  X(slice) X(truncate) X(urlencode) X(xmlattr) X(groupby) X(wordwrap)
#define JINJA_TESTS(X)                                                                      \
  X(defined) X(undefined) X(none) X(boolean) X(false) X(true) X(integer) X(float)          \
  X(number) X(string) X(mapping) X(iterable) X(sequence) X(callable) X(odd) X(even)        \
  X(divisibleby) X(eq) X(equalto) X(ne) X(lt) X(le) X(gt) X(ge) X(in) X(sameas) X(lower)    \
  X(upper) X(escaped) X(greaterthan) X(lessthan) X(filter) X(test)

enum {
#define X(n) F_##n,
  JINJA_FILTERS(X)
#undef X
  F__COUNT
};
enum {
#define X(n) TS_##n,
  JINJA_TESTS(X)
#undef X
  TS__COUNT
};

/* The id of a filter or test by name (a test also by the operator select() may name it by:
 * "==", "<", ...), or -1. */
int tok__jinja_filter_id(const char *s, size_t n);
int tok__jinja_test_id(const char *s, size_t n);

/* ---- template tree -------------------------------------------------------------- */
typedef enum {
  /* expressions */
  N_LIT, N_NAME, N_LIST, N_TUPLE, N_DICT, N_ATTR, N_ITEM, N_SLICE, N_CALL, N_FILTER, N_TEST,
  N_NEG, N_POS, N_NOT, N_AND, N_OR, N_BIN, N_CMP, N_COND, N_CONCAT,
  N_BLOCK, /* the rendered body of a {% filter %} block or filtered {% set %} */
  /* statements */
  S_BODY, S_TEXT, S_OUT, S_IF, S_FOR, S_SET, S_SET_ATTR, S_SET_BLOCK, S_MACRO, S_BREAK,
  S_CONTINUE, S_FILTER,
} jnode_kind;

typedef struct jnode {
  uint8_t kind;
  uint8_t op;       /* N_BIN: operator; N_TEST: negated; S_FOR: recursive unsupported */
  uint32_t pos;     /* byte offset in the template source */
  struct jnode *a, *b, *c, *d;
  struct jnode **items; /* lists, tuples, dict (key, value, key, ...), call args, bodies */
  const char **names;   /* call keyword names (NULL for positional), targets, params */
  size_t n_items, n_names;
  uint8_t *ops;         /* N_CMP: one operator per link */
  const char *name;     /* N_NAME, N_ATTR, N_FILTER, N_TEST, S_SET targets, S_MACRO */
  int id;               /* N_FILTER/N_TEST: resolved builtin, -1 unknown (an error if run) */
  jv lit;               /* N_LIT, S_TEXT */
} jnode;

struct tok_chat_template {
  jarena arena;
  jnode *root;
  bool iterates_content;
  char *source;
  size_t source_len;
};

/* ---- a render ------------------------------------------------------------------- */
typedef struct jframe {
  struct jframe *parent;
  size_t n, cap;
  const char **names;
  jv *vals;
} jframe;

typedef struct jrender {
  jmp_buf exit;
  jarena arena;
  tok_error *err;
  const tok_chat_limits *lim;
  uint64_t steps;
  uint64_t step_check;  /* tok__jr_step's slow path runs when steps reach this (0: at once) */
  uint64_t deadline_ns; /* CLOCK_MONOTONIC; 0: none */
  unsigned depth;
  time_t now;
  jframe *globals;
  tok_buf *out; /* where text goes now (macros and block sets divert it) */
  struct jdivert *diverts; /* open diverted buffers, freed if the render fails */
  int loop_ctl; /* 1 break, 2 continue */
  jv block_text; /* what N_BLOCK gives: the body of the innermost running filter block */
  /* namespaces whose attributes were set: the only values that outlive a loop iteration
   * while living in its memory (values are immutable otherwise); malloc'd */
  jdict **dirty;
  size_t n_dirty, cap_dirty;
  jarena scratch; /* where those values wait while an iteration is released */
} jrender;

_Noreturn void tok__jr_fail(jrender *r, tok_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void *tok__jr_alloc(jrender *r, size_t n); /* fails the render past the memory limit */
void *tok__jr_grow(jrender *r, const void *old, size_t n, size_t cap, size_t size); /* tok__ja_grow, or fails */
/* Counts n steps of work; past the step limit, or (checked every 65,536 steps) the
 * deadline, the render fails. Inline: it runs for every node, lookup and copied block of
 * text, so the common case is an add and a compare. */
void tok__jr_step_check(jrender *r);
static inline void tok__jr_step(jrender *r, uint64_t n)
{
  r->steps += n;
  if (r->steps >= r->step_check) tok__jr_step_check(r);
}
uint64_t tok__chat_now_ns(void);

/* construction */
jv tok__jv_none(void);
jv tok__jv_undef(const char *why);
jv tok__jv_bool(bool b);
jv tok__jv_int(int64_t i);
jv tok__jv_float(double f);
jv tok__jv_str(const char *p, size_t n);
jv tok__jv_str_copy(jrender *r, const char *p, size_t n);
jv tok__jv_list_new(jrender *r, size_t n); /* n items, to be filled */
jdict *tok__jd_new(jrender *r, size_t cap);
void tok__jd_set(jrender *r, jdict *d, jv k, jv v);
const jv *tok__jd_get(jrender *r, const jdict *d, jv k);
const jv *tok__jd_get_str(const jdict *d, const char *k, size_t n);

/* Python semantics */
bool tok__jv_truthy(jv v);
bool tok__jv_eq(jrender *r, jv a, jv b);
int tok__jv_cmp(jrender *r, jv a, jv b); /* <0, 0, >0; fails on unorderable types */
const char *tok__jv_type_name(jv v);     /* Python's type name, as error messages give it */
void tok__jv_str_out(jrender *r, tok_buf *b, jv v);  /* str(v) */
void tok__jv_repr_out(jrender *r, tok_buf *b, jv v); /* repr(v) */
jv tok__jv_to_str(jrender *r, jv v);
void tok__jv_float_repr(char *buf, size_t cap, double f);
size_t tok__jv_str_chars(const char *p, size_t n);

/* JSON in and out */
typedef struct jjson_opts {
  bool ensure_ascii, sort_keys;
  const char *indent; /* NULL: none */
  size_t indent_len;
  const char *item_sep, *key_sep;
  size_t item_sep_len, key_sep_len;
} jjson_opts;
jv tok__jv_from_json(jrender *r, const char *s, size_t n, const char *what);
void tok__jv_json_out(jrender *r, tok_buf *b, jv v, const jjson_opts *o, size_t level);

void tok__jr_buf_put(jrender *r, tok_buf *b, const void *p, size_t n);
void tok__jv_detail_set(char *dst, size_t cap, const char *src);

/* Output diverted into a string (macro calls, block sets, str() of containers). The
 * buffer is tracked by the render so that a failure frees it. */
typedef struct jdivert {
  tok_buf buf;
  tok_buf *saved;
  struct jdivert *next;
} jdivert;
jdivert *tok__jr_divert_begin(jrender *r);
jv tok__jr_divert_end(jrender *r, jdivert *d);
void tok__jr_divert_free_all(jrender *r);
static inline void tok__jr_buf_puts(jrender *r, tok_buf *b, const char *s);

/* Unicode helpers (Python's str.isspace, simple case mappings) */
bool tok__jv_py_space(int32_t c);
int32_t tok__jv_next_cp(const char *p, size_t n, size_t *i);

/* Python's printf-style formatting (fmt % argv; a tuple is the argument list, a mapping
 * serves %(key)s) and markupsafe's escape; both keep Markup as markupsafe does. */
jv tok__py_percent(jrender *r, jv fmt, jv argv);
jv tok__markup_escape(jrender *r, jv v);

/* vLLM's content-format detection (chat.c): true for the "openai" format */
bool tok__chat_openai_content(const jnode *root);

/* ---- the evaluator (eval.c), its filters and tests (filters.c) and Python's methods
 * (pymethods.c) ------------------------------------------------------------------- */
jv tok__jr_render_value(jrender *r, const tok_chat_template *t, jframe *globals);
void tok__jr_set(jrender *r, jframe *f, const char *name, jv v);

/* A render error; every function of these files that fails has its render in r. */
#define FAIL(...) tok__jr_fail(r, TOK_ERENDER, __VA_ARGS__)
/* jinja2's error for using an undefined value (its message, or a generic one) */
_Noreturn void tok__jr_fail_undef(jrender *r, jv v);

/* the builtin functions and methods a JV_FUNC can stand for (jfunc.id) */
enum {
  B_RANGE, B_NAMESPACE, B_DICT, B_RAISE, B_STRFTIME, B_CYCLE,
  M_STARTSWITH, M_ENDSWITH, M_STRIP, M_LSTRIP, M_RSTRIP, M_SPLIT, M_RSPLIT, M_UPPER, M_LOWER,
  M_TITLE, M_CAPITALIZE, M_REPLACE, M_FIND, M_RFIND, M_COUNT, M_JOIN, M_SPLITLINES,
  M_ISDIGIT, M_ISALPHA, M_ISSPACE, M_ISALNUM, M_ISUPPER, M_ISLOWER, M_FORMAT,
  M_ITEMS, M_KEYS, M_VALUES, M_GET, M_LCOUNT, M_LINDEX, M_LCOPY,
  M_UNSAFE, /* a method that mutates (append, update, pop, ...): the sandbox refuses it */
};
jv tok__jv_func(jrender *r, int id, jv self); /* a builtin, or a method bound to self */

/* The arguments of a call, filter or test, as evaluated. */
typedef struct jargs {
  jv pos[8];
  size_t n_pos;
  const char *kw_names[8];
  jv kw[8];
  size_t n_kw;
} jargs;
jv tok__jarg(const jargs *a, size_t i, const char *name, jv def); /* positional i, or keyword name, or def */
int64_t tok__jarg_int(jrender *r, jv v, const char *what);      /* fails unless an int (or bool) */

/* A list being built, in the render's arena. */
typedef struct jvec {
  jv *v;
  size_t n, cap;
} jvec;
void tok__jvec_push(jrender *r, jvec *v, jv x);
jv tok__jv_list_from(jrender *r, const jv *items, size_t n); /* a list of a copy of items */

/* values with Python's (and jinja2's) rules */
jv tok__jv_need_str(jrender *r, jv v, const char *what); /* fails unless a str */
jv tok__jv_str_cat(jrender *r, jv a, jv b);
jv tok__jv_str_concat(jrender *r, const jv *parts, size_t n); /* within the output limit */
const jlist *tok__jv_iterate(jrender *r, jv v); /* what a for loop sees: items, keys, characters */
int64_t tok__jv_length(jrender *r, jv v);
jv tok__jv_getitem(jrender *r, jv obj, jv key);                /* obj[key], or undefined */
jv tok__jv_attr(jrender *r, jv obj, const char *name, size_t name_len); /* an attribute, never an item */
jv tok__jv_slice(jrender *r, jv obj, jv start, jv stop, jv step); /* obj[start:stop:step] */
jv tok__jv_binop(jrender *r, int op, jv a, jv b);               /* OP_ADD ... OP_POW */
bool tok__jv_contains(jrender *r, jv hay, jv needle);            /* needle in hay */

static inline int64_t tok__jv_ival(jv v) /* an int or bool's value */
{
  return v.t == JV_INT ? v.u.i : v.u.b;
}
/* Markup's own methods (strip, upper, ...) give Markup again */
static inline jv tok__jv_keep_markup(jv from, jv s)
{
  s.tuple = from.t == JV_STR && from.tuple == JV_MARKUP ? JV_MARKUP : 0;
  return s;
}

/* filters.c: filter or test id (F_*, TS_*) applied to v */
jv tok__jr_filter(jrender *r, int id, jv v, const jargs *a);
bool tok__jr_test(jrender *r, int id, jv v, const jargs *a);

/* pymethods.c: Python's str methods on code points */
jv tok__py_method(jrender *r, jv obj, const char *name, size_t name_len); /* bound, or undefined */
jv tok__py_call_method(jrender *r, int id, jv self, const jargs *a);
enum { PY_UPPER, PY_LOWER, PY_TITLE, PY_CAPITALIZE };
jv tok__py_case(jrender *r, jv s, int mode); /* str.upper(), lower(), title(), capitalize() */
/* str.strip(chars) (lstrip: right false, rstrip: left false); chars not a str: whitespace.
 * A slice of s: needs no render. */
jv tok__py_strip(jv s, jv chars, bool left, bool right);
jv tok__py_split(jrender *r, jv s, jv sep, int64_t maxsplit, bool from_right); /* split, rsplit */
jv tok__py_replace(jrender *r, jv s, jv old, jv new_, int64_t count);
jv tok__py_splitlines(jrender *r, jv s, bool keepends);
jv tok__py_join(jrender *r, const jv *items, size_t n, jv sep); /* str() of each, sep between */
bool tok__py_is_case(jv v, bool upper);                         /* str.isupper(), islower() */
/* the first nd[0, nn) in h[0, hn) (Python's find: an empty needle is found at once) */
static inline const char *tok__find_bytes(const char *h, size_t hn, const char *nd, size_t nn)
{
  if (nn == 0) return h;
  if (nn > hn) return NULL;
  return memmem(h, hn, nd, nn);
}

static inline void tok__jr_buf_puts(jrender *r, tok_buf *b, const char *s)
{
  tok__jr_buf_put(r, b, s, strlen(s));
}

#endif
