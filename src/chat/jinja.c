/*
 * jinja.c — the chat template engine: lexer, parser and tree-walking evaluator for the
 * Jinja subset that chat templates use, with jinja2's semantics as transformers sets it
 * up (trim_blocks, lstrip_blocks, loopcontrols, no autoescape, immutable sandbox).
 *
 * Lexing follows jinja2's rules to the byte, since whitespace is output: newlines are
 * normalised to "\n" and one trailing newline is dropped; "{%-"/"-%}" strip all (Unicode)
 * whitespace on their side; lstrip_blocks removes spaces before a "{%" or "{#" that starts
 * a line; trim_blocks removes the newline after "%}" and "#}". Names resolve through
 * scopes as jinja2 compiles them: a for-loop iteration and a macro call get a scope of
 * their own (a `set` inside does not leak out; namespace() is how templates carry state
 * out), if-blocks do not.
 *
 * The tree is built once per template (tok_chat_template_parse) in the template's arena
 * and is read-only afterwards. Filters and tests are resolved by name at parse time; an
 * unknown one is a parse error, except inside an `if` (statement or inline), where
 * jinja2 >= 3.0 makes it an error only when it runs (see jparse.soft).
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "chat/jinja_int.h"

/* ======================================================================================
 * Lexer
 * ==================================================================================== */
typedef enum {
  T_EOF, T_DATA, T_BLOCK_BEGIN, T_BLOCK_END, T_VAR_BEGIN, T_VAR_END, T_NAME, T_STRING,
  T_INT, T_FLOAT, T_OP,
} jtok_kind;

typedef struct jtok {
  uint8_t kind;
  uint32_t pos;
  const char *p; /* T_DATA, T_NAME, T_OP: text; T_STRING: unescaped */
  size_t n;
  int64_t i;
  double f;
} jtok;

typedef struct jparse {
  jarena *a;
  tok_error *err;
  jmp_buf exit;
  const char *src; /* normalised source */
  size_t len;
  jtok *toks;
  size_t n_toks, cap_toks, at;
  unsigned depth;
  /* jinja2 >= 3.0 compiles an unknown filter or test inside an `if` statement or an
   * inline if-expression (a "soft" frame) to a runtime error; anywhere else it is a
   * compile error. Outside a soft frame an unknown name is held as pending until the
   * expression is complete, since the `if` that makes it soft may follow it. */
  bool soft;
  size_t n_pending;
  uint32_t pending_pos;
  char pending_what[96];
} jparse;

_Noreturn static void jp_fail(jparse *p, size_t pos, tok_err code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
_Noreturn static void jp_fail(jparse *p, size_t pos, tok_err code, const char *fmt, ...)
{
  if (p->err) {
    size_t line = 1;
    for (size_t i = 0; i < pos && i < p->len; i++) line += p->src[i] == '\n';
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    p->err->code = code;
    p->err->pos = pos;
    p->err->index = line;
    char full[sizeof p->err->detail];
    snprintf(full, sizeof full, "chat template line %zu: %s", line, msg);
    tok__jv_detail_set(p->err->detail, sizeof p->err->detail, full);
  }
  longjmp(p->exit, 1);
}

static void *jp_alloc(jparse *p, size_t n)
{
  void *m = tok__ja_alloc_raw(p->a, n);
  if (!m) jp_fail(p, 0, TOK_ENOMEM, "out of memory");
  return m;
}

static void *jp_grow(jparse *p, const void *old, size_t n, size_t cap, size_t size)
{
  void *m = tok__ja_grow(p->a, old, n, cap, size);
  if (!m) jp_fail(p, 0, TOK_ENOMEM, "out of memory");
  return m;
}

static void push_tok(jparse *p, jtok t)
{
  if (p->n_toks == p->cap_toks) {
    size_t cap = p->cap_toks ? 2 * p->cap_toks : 256;
    p->toks = jp_grow(p, p->toks, p->n_toks, cap, sizeof *p->toks);
    p->cap_toks = cap;
  }
  p->toks[p->n_toks++] = t;
}

/* Python's \s on a str, at byte i: length of the whitespace character there, or 0. */
static size_t space_at(const char *s, size_t n, size_t i)
{
  if (i >= n) return 0;
  size_t k = i;
  int32_t c = tok__jv_next_cp(s, n, &k);
  return tok__jv_py_space(c) ? k - i : 0;
}

static void lex_string(jparse *p, size_t *ip)
{
  const char *s = p->src;
  size_t i = *ip, start = i;
  char q = s[i++];
  size_t begin = i;
  while (i < p->len && s[i] != q) i += s[i] == '\\' ? 2 : 1;
  if (i >= p->len) jp_fail(p, start, TOK_ETEMPLATE, "unterminated string");
  size_t end = i++;
  char *o = jp_alloc(p, (end - begin) * 4 + 1);
  size_t n = 0;
  for (size_t k = begin; k < end;) {
    if (s[k] != '\\') {
      o[n++] = s[k++];
      continue;
    }
    char e = s[k + 1];
    k += 2;
    int32_t c = -1;
    int hex = 0;
    switch (e) {
    case '\n': continue;
    case '\\': c = '\\'; break;
    case '\'': c = '\''; break;
    case '"': c = '"'; break;
    case 'a': c = 7; break;
    case 'b': c = 8; break;
    case 'f': c = 12; break;
    case 'n': c = 10; break;
    case 'r': c = 13; break;
    case 't': c = 9; break;
    case 'v': c = 11; break;
    case 'x': hex = 2; break;
    case 'u': hex = 4; break;
    case 'U': hex = 8; break;
    case 'N': jp_fail(p, k - 2, TOK_ETEMPLATE, "\\N{...} escapes are not supported");
    default:
      if (e >= '0' && e <= '7') {
        c = e - '0';
        for (int d = 0; d < 2 && k < end && s[k] >= '0' && s[k] <= '7'; d++) c = c * 8 + (s[k++] - '0');
      } else { /* Python keeps an unknown escape as it is */
        o[n++] = '\\';
        k--;
        continue;
      }
    }
    if (hex) {
      uint32_t u = 0;
      for (int d = 0; d < hex; d++, k++) {
        char h = k < end ? s[k] : 0;
        int v = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10
              : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
        if (v < 0) jp_fail(p, k, TOK_ETEMPLATE, "truncated \\%c escape", e);
        u = u * 16 + (uint32_t)v; /* 8 digits fit in 32 bits */
      }
      c = u > 0x10FFFF ? -1 : (int32_t)u;
      /* a \\uD83C\\uDF89 pair is the character it encodes (as JSON reads it); a lone half
       * has no UTF-8 form */
      if (c >= 0xD800 && c < 0xDC00 && k + 6 <= end && s[k] == '\\' && s[k + 1] == 'u') {
        uint32_t lo = 0;
        bool ok = true;
        for (int d = 0; d < 4; d++) {
          char h = s[k + 2 + d];
          int v = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10
                : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
          if (v < 0) ok = false;
          lo = lo * 16 + (uint32_t)(v < 0 ? 0 : v);
        }
        if (ok && lo >= 0xDC00 && lo <= 0xDFFF) {
          c = 0x10000 + ((c - 0xD800) << 10) + (int32_t)(lo - 0xDC00);
          k += 6;
        }
      }
      if (c < 0 || (c >= 0xD800 && c <= 0xDFFF))
        jp_fail(p, k, TOK_ETEMPLATE, "escape names no Unicode scalar value");
    }
    n += (size_t)utf8proc_encode_char(c, (utf8proc_uint8_t *)o + n);
  }
  o[n] = 0;
  push_tok(p, (jtok){.kind = T_STRING, .pos = (uint32_t)start, .p = o, .n = n});
  *ip = i;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_name_start(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static void lex_number(jparse *p, size_t *ip)
{
  const char *s = p->src;
  size_t i = *ip, start = i;
  char buf[128];
  size_t n = 0;
  bool is_float = false;
  int base = 10;
  /* keeps a character of the literal; a literal too long to hold is refused, never cut */
#define KEEP(c)                                                                               \
  do {                                                                                        \
    if (n >= sizeof buf - 1) jp_fail(p, start, TOK_ETEMPLATE, "number literal too long");    \
    buf[n++] = (c);                                                                           \
  } while (0)
  if (s[i] == '0' && i + 1 < p->len && s[i + 1] && strchr("xXoObB", s[i + 1])) {
    base = s[i + 1] == 'x' || s[i + 1] == 'X' ? 16 : s[i + 1] == 'o' || s[i + 1] == 'O' ? 8 : 2;
    i += 2;
    while (i < p->len && (isxdigit((unsigned char)s[i]) || s[i] == '_')) {
      if (s[i] != '_') KEEP(s[i]);
      i++;
    }
  } else {
    while (i < p->len && (is_digit(s[i]) || s[i] == '_')) {
      if (s[i] != '_') KEEP(s[i]);
      i++;
    }
    if (i + 1 < p->len && s[i] == '.' && is_digit(s[i + 1])) {
      is_float = true;
      KEEP(s[i]);
      i++;
      while (i < p->len && (is_digit(s[i]) || s[i] == '_')) {
        if (s[i] != '_') KEEP(s[i]);
        i++;
      }
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
      size_t k = i + 1;
      if (k < p->len && (s[k] == '+' || s[k] == '-')) k++;
      if (k < p->len && is_digit(s[k])) {
        is_float = true;
        while (i < k) KEEP(s[i++]);
        while (i < p->len && (is_digit(s[i]) || s[i] == '_')) {
          if (s[i] != '_') KEEP(s[i]);
          i++;
        }
      }
    }
  }
#undef KEEP
  buf[n] = 0;
  jtok t = {.pos = (uint32_t)start};
  if (is_float) {
    t.kind = T_FLOAT;
    t.f = strtod(buf, NULL);
  } else {
    t.kind = T_INT;
    errno = 0;
    char *end;
    t.i = strtoll(buf, &end, base);
    if (errno || n == 0 || *end) jp_fail(p, start, TOK_ETEMPLATE, "integer literal out of range or malformed");
  }
  push_tok(p, t);
  *ip = i;
}

static const char *const OPS[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%",
                                   "~", "[", "]", "(", ")", "{", "}", ">", "<", "=", ".", ":",
                                   "|", ",", ";"};

/* Lexes the inside of a tag up to and including its end; returns the index after it and
 * whether the end's match ended with a newline (jinja2's line_starting). */
static size_t lex_tag(jparse *p, size_t i, bool block, bool *line_starting)
{
  const char *s = p->src;
  size_t n = p->len;
  char stack[256]; /* open brackets: the end of a tag is only seen outside them (jinja2) */
  size_t depth = 0;
  for (;;) {
    if (i >= n) jp_fail(p, i, TOK_ETEMPLATE, "unexpected end of template inside a tag");
    /* the end rule comes first, as in jinja2 */
    char e1 = block ? '%' : '}';
    if (depth) {
      /* skip the end rules */
    } else if (s[i] == '-' && i + 2 < n + 0 && s[i + 1] == e1 && s[i + 2] == '}') {
      push_tok(p, (jtok){.kind = block ? T_BLOCK_END : T_VAR_END, .pos = (uint32_t)i});
      i += 3;
      size_t k;
      bool nl = false;
      while ((k = space_at(s, n, i))) {
        nl = s[i] == '\n';
        i += k;
      }
      *line_starting = nl;
      return i;
    }
    if (!depth && block && s[i] == '+' && i + 2 < n && s[i + 1] == '%' && s[i + 2] == '}') {
      push_tok(p, (jtok){.kind = T_BLOCK_END, .pos = (uint32_t)i});
      *line_starting = false;
      return i + 3;
    }
    if (!depth && s[i] == e1 && i + 1 < n && s[i + 1] == '}') {
      push_tok(p, (jtok){.kind = block ? T_BLOCK_END : T_VAR_END, .pos = (uint32_t)i});
      i += 2;
      *line_starting = false;
      if (block && i < n && s[i] == '\n') { /* trim_blocks */
        i++;
        *line_starting = true;
      }
      return i;
    }
    size_t k = space_at(s, n, i);
    if (k) {
      i += k;
      continue;
    }
    char c = s[i];
    if (is_digit(c)) {
      lex_number(p, &i);
      continue;
    }
    if (is_name_start(c)) {
      size_t start = i;
      while (i < n && (is_name_start(s[i]) || is_digit(s[i]))) i++;
      push_tok(p, (jtok){.kind = T_NAME, .pos = (uint32_t)start, .p = s + start, .n = i - start});
      continue;
    }
    if (c == '\'' || c == '"') {
      lex_string(p, &i);
      continue;
    }
    bool found = false;
    for (size_t o = 0; o < sizeof OPS / sizeof *OPS; o++) {
      size_t l = strlen(OPS[o]);
      if (n - i >= l && memcmp(s + i, OPS[o], l) == 0) {
        char c0 = OPS[o][0];
        if (l == 1 && (c0 == '(' || c0 == '[' || c0 == '{')) {
          if (depth == sizeof stack) jp_fail(p, i, TOK_ELIMIT, "brackets nested too deeply");
          stack[depth++] = c0 == '(' ? ')' : c0 == '[' ? ']' : '}';
        } else if (l == 1 && (c0 == ')' || c0 == ']' || c0 == '}')) {
          if (!depth) jp_fail(p, i, TOK_ETEMPLATE, "unexpected '%c'", c0);
          if (stack[--depth] != c0)
            jp_fail(p, i, TOK_ETEMPLATE, "unexpected '%c', expected '%c'", c0, stack[depth]);
        }
        push_tok(p, (jtok){.kind = T_OP, .pos = (uint32_t)i, .p = OPS[o], .n = l});
        i += l;
        found = true;
        break;
      }
    }
    if (!found) jp_fail(p, i, TOK_ETEMPLATE, "unexpected character '%c'", c);
  }
}

static void lex(jparse *p)
{
  const char *s = p->src;
  size_t n = p->len, i = 0;
  bool line_starting = true;
  while (i < n) {
    /* the next tag opener */
    size_t q = i;
    int kind = 0; /* 1 block, 2 var, 3 comment */
    for (; q + 1 < n; q++) {
      if (s[q] != '{') continue;
      if (s[q + 1] == '%') { kind = 1; break; }
      if (s[q + 1] == '{') { kind = 2; break; }
      if (s[q + 1] == '#') { kind = 3; break; }
    }
    if (!kind) {
      push_tok(p, (jtok){.kind = T_DATA, .pos = (uint32_t)i, .p = s + i, .n = n - i});
      break;
    }
    char sign = q + 2 < n && (s[q + 2] == '-' || s[q + 2] == '+') ? s[q + 2] : 0;
    size_t text_len = q - i;
    if (sign == '-') {
      text_len = tok__py_strip(tok__jv_str(s + i, text_len), tok__jv_none(), false, true).u.s.n;
    } else if (sign != '+' && kind != 2) { /* lstrip_blocks */
      size_t l_pos = 0;
      for (size_t k = text_len; k > 0; k--)
        if (s[i + k - 1] == '\n') {
          l_pos = k;
          break;
        }
      if ((l_pos > 0 || line_starting) && l_pos < text_len) {
        size_t k = l_pos, w;
        while (k < text_len && (w = space_at(s + i, text_len, k))) k += w;
        if (k == text_len) text_len = l_pos;
      }
    }
    if (text_len) push_tok(p, (jtok){.kind = T_DATA, .pos = (uint32_t)i, .p = s + i, .n = text_len});
    size_t body = q + 2 + (sign ? 1 : 0);
    if (kind == 3) { /* comment: (.*?)(\+#}|\-#}\s*|#}\n?) */
      size_t k = body;
      for (;; k++) {
        if (k + 1 >= n) jp_fail(p, q, TOK_ETEMPLATE, "missing end of comment tag");
        if (s[k] == '+' && k + 2 < n && s[k + 1] == '#' && s[k + 2] == '}') {
          i = k + 3;
          line_starting = false;
          break;
        }
        if (s[k] == '-' && k + 2 < n && s[k + 1] == '#' && s[k + 2] == '}') {
          i = k + 3;
          line_starting = false;
          size_t w;
          while ((w = space_at(s, n, i))) {
            line_starting = s[i] == '\n';
            i += w;
          }
          break;
        }
        if (s[k] == '#' && s[k + 1] == '}') {
          i = k + 2;
          line_starting = false;
          if (i < n && s[i] == '\n') {
            i++;
            line_starting = true;
          }
          break;
        }
      }
      continue;
    }
    /* {% raw %} is not supported: say so rather than render it as a tag */
    push_tok(p, (jtok){.kind = kind == 1 ? T_BLOCK_BEGIN : T_VAR_BEGIN, .pos = (uint32_t)q});
    i = lex_tag(p, body, kind == 1, &line_starting);
  }
  push_tok(p, (jtok){.kind = T_EOF, .pos = (uint32_t)n});
}

/* ======================================================================================
 * Parser
 * ==================================================================================== */
const char *const tok__jinja_filters[F__COUNT] = {
#define X(n) #n,
    JINJA_FILTERS(X)
#undef X
};
const char *const tok__jinja_tests[TS__COUNT] = {
#define X(n) #n,
    JINJA_TESTS(X)
#undef X
};

static int lookup_name(const char *const *names, size_t count, const char *s, size_t n)
{
  for (size_t i = 0; i < count; i++)
    if (strlen(names[i]) == n && memcmp(names[i], s, n) == 0) return (int)i;
  return -1;
}

int tok__jinja_filter_id(const char *s, size_t n)
{
  return lookup_name(tok__jinja_filters, F__COUNT, s, n);
}

int tok__jinja_test_id(const char *s, size_t n)
{
  /* select("==", y) names a test by its operator (jinja2's aliases) */
  static const char *const ops[][2] = {{"==", "eq"}, {"!=", "ne"}, {"<", "lt"},
                                       {"<=", "le"}, {">", "gt"},  {">=", "ge"}};
  for (size_t k = 0; k < sizeof ops / sizeof *ops; k++)
    if (strlen(ops[k][0]) == n && !memcmp(ops[k][0], s, n)) return tok__jinja_test_id(ops[k][1], 2);
  return lookup_name(tok__jinja_tests, TS__COUNT, s, n);
}

static jtok *cur(jparse *p) { return &p->toks[p->at]; }
static jtok *next(jparse *p) { return &p->toks[p->at++]; }

static bool tok_is(const jtok *t, jtok_kind k, const char *text)
{
  if (t->kind != k) return false;
  return !text || (t->n == strlen(text) && memcmp(t->p, text, t->n) == 0);
}
static bool at_op(jparse *p, const char *op) { return tok_is(cur(p), T_OP, op); }
static bool at_name(jparse *p, const char *name) { return tok_is(cur(p), T_NAME, name); }

static bool skip_op(jparse *p, const char *op)
{
  if (!at_op(p, op)) return false;
  p->at++;
  return true;
}
static bool skip_name(jparse *p, const char *name)
{
  if (!at_name(p, name)) return false;
  p->at++;
  return true;
}

static const char *tok_desc(const jtok *t, char *buf, size_t cap)
{
  switch (t->kind) {
  case T_EOF: return "end of template";
  case T_BLOCK_END: return "end of statement block";
  case T_VAR_END: return "end of print statement";
  case T_DATA: return "template data";
  case T_STRING: return "string";
  case T_INT: case T_FLOAT: return "number";
  default: snprintf(buf, cap, "'%.*s'", (int)(t->n > 40 ? 40 : t->n), t->p); return buf;
  }
}

static void expect_op(jparse *p, const char *op)
{
  if (!skip_op(p, op)) {
    char b[64];
    jp_fail(p, cur(p)->pos, TOK_ETEMPLATE, "expected '%s', got %s", op, tok_desc(cur(p), b, sizeof b));
  }
}

static const char *expect_name(jparse *p)
{
  jtok *t = cur(p);
  if (t->kind != T_NAME) {
    char b[64];
    jp_fail(p, t->pos, TOK_ETEMPLATE, "expected a name, got %s", tok_desc(t, b, sizeof b));
  }
  p->at++;
  char *s = jp_alloc(p, t->n + 1);
  memcpy(s, t->p, t->n);
  s[t->n] = 0;
  return s;
}

static jnode *mk(jparse *p, jnode_kind k, uint32_t pos)
{
  jnode *n = jp_alloc(p, sizeof *n);
  memset(n, 0, sizeof *n);
  n->kind = (uint8_t)k;
  n->pos = pos;
  return n;
}

/* a growable node list during parsing */
typedef struct nlist {
  jnode **v;
  const char **names;
  size_t n, cap;
} nlist;

static void nl_push(jparse *p, nlist *l, jnode *x, const char *name)
{
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 4;
    l->v = jp_grow(p, l->v, l->n, cap, sizeof *l->v);
    l->names = jp_grow(p, l->names, l->n, cap, sizeof *l->names);
    l->cap = cap;
  }
  l->v[l->n] = x;
  l->names[l->n++] = name;
}

static void nl_to(jnode *n, const nlist *l, bool with_names)
{
  n->items = l->v;
  n->n_items = l->n;
  if (with_names) {
    n->names = l->names;
    n->n_names = l->n;
  }
}

static jnode *parse_expr(jparse *p, bool with_cond);
static jnode *parse_unary(jparse *p, bool with_filter);

static void enter(jparse *p)
{
  if (++p->depth > 200) jp_fail(p, cur(p)->pos, TOK_ELIMIT, "template nested too deeply");
}

static void parse_call_args(jparse *p, jnode *call)
{
  nlist l = {0};
  expect_op(p, "(");
  while (!at_op(p, ")")) {
    if (l.n) expect_op(p, ",");
    if (at_op(p, ")")) break;
    if (at_op(p, "*") || at_op(p, "**"))
      jp_fail(p, cur(p)->pos, TOK_ETEMPLATE, "*args and **kwargs in calls are not supported");
    const char *kw = NULL;
    if (cur(p)->kind == T_NAME && tok_is(&p->toks[p->at + 1], T_OP, "=")) {
      kw = expect_name(p);
      p->at++;
    } else if (l.n && l.names[l.n - 1]) {
      jp_fail(p, cur(p)->pos, TOK_ETEMPLATE, "positional argument after a keyword argument");
    }
    nl_push(p, &l, parse_expr(p, true), kw);
  }
  expect_op(p, ")");
  nl_to(call, &l, true);
}

/* Items up to `close` (consumed), comma-separated with an optional trailing comma; dicts
 * as key, value pairs. Returns whether a comma ended the items (a one-item tuple). */
static bool parse_seq(jparse *p, const char *close, bool dict, nlist *l)
{
  bool comma = false;
  while (!at_op(p, close)) {
    if (l->n) {
      expect_op(p, ",");
      comma = true;
      if (at_op(p, close)) break;
    }
    comma = false;
    nl_push(p, l, parse_expr(p, true), NULL);
    if (dict) {
      expect_op(p, ":");
      nl_push(p, l, parse_expr(p, true), NULL);
    }
  }
  expect_op(p, close);
  return comma;
}

static jnode *parse_primary(jparse *p)
{
  enter(p);
  jtok *t = cur(p);
  jnode *n;
  if (t->kind == T_NAME) {
    p->at++;
    n = mk(p, N_LIT, t->pos);
    if (tok_is(t, T_NAME, "true") || tok_is(t, T_NAME, "True")) n->lit = tok__jv_bool(true);
    else if (tok_is(t, T_NAME, "false") || tok_is(t, T_NAME, "False")) n->lit = tok__jv_bool(false);
    else if (tok_is(t, T_NAME, "none") || tok_is(t, T_NAME, "None")) n->lit = tok__jv_none();
    else {
      n->kind = N_NAME;
      char *s = jp_alloc(p, t->n + 1);
      memcpy(s, t->p, t->n);
      s[t->n] = 0;
      n->name = s;
    }
  } else if (t->kind == T_STRING) {
    /* adjacent strings concatenate */
    size_t total = 0, k = p->at;
    while (p->toks[k].kind == T_STRING) total += p->toks[k++].n;
    char *s = jp_alloc(p, total + 1);
    size_t o = 0;
    while (cur(p)->kind == T_STRING) {
      memcpy(s + o, cur(p)->p, cur(p)->n);
      o += cur(p)->n;
      p->at++;
    }
    s[o] = 0;
    n = mk(p, N_LIT, t->pos);
    n->lit = tok__jv_str(s, o);
  } else if (t->kind == T_INT || t->kind == T_FLOAT) {
    p->at++;
    n = mk(p, N_LIT, t->pos);
    n->lit = t->kind == T_INT ? tok__jv_int(t->i) : tok__jv_float(t->f);
  } else if (at_op(p, "(") || at_op(p, "[") || at_op(p, "{")) {
    char open = *cur(p)->p;
    p->at++;
    nlist l = {0};
    bool trailing_comma = parse_seq(p, open == '(' ? ")" : open == '[' ? "]" : "}", open == '{', &l);
    if (open == '(' && l.n == 1 && !trailing_comma) {
      n = l.v[0]; /* parentheses around one expression */
    } else {
      n = mk(p, open == '(' ? N_TUPLE : open == '[' ? N_LIST : N_DICT, t->pos);
      nl_to(n, &l, false);
    }
  } else {
    char b[64];
    jp_fail(p, t->pos, TOK_ETEMPLATE, "unexpected %s", tok_desc(t, b, sizeof b));
  }
  p->depth--;
  return n;
}

static jnode *parse_subscript(jparse *p, jnode *obj, uint32_t pos)
{
  /* [a], [a:b], [a:b:c], with any part omitted */
  jnode *parts[3] = {0};
  int colons = 0;
  if (!at_op(p, ":")) parts[0] = parse_expr(p, true);
  while (colons < 2 && skip_op(p, ":")) {
    colons++;
    if (!at_op(p, ":") && !at_op(p, "]")) parts[colons] = parse_expr(p, true);
  }
  expect_op(p, "]");
  jnode *n;
  if (!colons) {
    n = mk(p, N_ITEM, pos);
    n->a = obj;
    n->b = parts[0];
  } else {
    n = mk(p, N_SLICE, pos);
    n->a = obj;
    n->b = parts[0];
    n->c = parts[1];
    n->d = parts[2];
  }
  return n;
}

/* fn(args...), at the "(" */
static jnode *parse_call(jparse *p, uint32_t pos, jnode *fn)
{
  jnode *c = mk(p, N_CALL, pos);
  c->a = fn;
  parse_call_args(p, c);
  return c;
}

static jnode *parse_postfix(jparse *p, jnode *n)
{
  for (;;) {
    uint32_t pos = cur(p)->pos;
    if (skip_op(p, ".")) {
      jtok *t = cur(p);
      if (t->kind == T_INT) { /* x.0 is x[0] */
        p->at++;
        jnode *idx = mk(p, N_LIT, t->pos);
        idx->lit = tok__jv_int(t->i);
        jnode *it = mk(p, N_ITEM, pos);
        it->a = n;
        it->b = idx;
        n = it;
        continue;
      }
      jnode *a = mk(p, N_ATTR, pos);
      a->a = n;
      a->name = expect_name(p);
      n = a;
    } else if (skip_op(p, "[")) {
      n = parse_subscript(p, n, pos);
    } else if (at_op(p, "(")) {
      n = parse_call(p, pos, n);
    } else {
      return n;
    }
  }
}

/* An unknown filter or test: a runtime error in a soft frame, else pending (see jparse). */
static void unknown_name(jparse *p, uint32_t pos, const char *kind, const char *name)
{
  if (p->soft) return;
  if (!p->n_pending++) {
    p->pending_pos = pos;
    snprintf(p->pending_what, sizeof p->pending_what, "%s '%.60s' is not supported", kind, name);
  }
}

static void check_pending(jparse *p)
{
  if (p->n_pending) jp_fail(p, p->pending_pos, TOK_ETEMPLATE, "%s", p->pending_what);
}

/* `name` or `name(args)`, the filter after a "|", applied to n */
static jnode *parse_filter_call(jparse *p, uint32_t pos, jnode *n)
{
  jtok *t = cur(p);
  const char *name = expect_name(p);
  int id = tok__jinja_filter_id(name, strlen(name));
  if (id < 0) unknown_name(p, t->pos, "filter", name);
  jnode *f = mk(p, N_FILTER, pos);
  f->a = n;
  f->name = name;
  f->id = id;
  if (at_op(p, "(")) parse_call_args(p, f);
  return f;
}

static jnode *parse_filter_expr(jparse *p, jnode *n)
{
  for (;;) {
    uint32_t pos = cur(p)->pos;
    if (skip_op(p, "|")) {
      n = parse_filter_call(p, pos, n);
    } else if (at_name(p, "is")) {
      p->at++;
      jnode *t = mk(p, N_TEST, pos);
      t->op = skip_name(p, "not");
      jtok *nt = cur(p);
      const char *name = expect_name(p); /* jinja2: a name, never an operator */
      int id = tok__jinja_test_id(name, strlen(name));
      if (id < 0) unknown_name(p, nt->pos, "test", name);
      t->a = n;
      t->name = name;
      t->id = id;
      jtok *c = cur(p);
      if (at_op(p, "(")) {
        parse_call_args(p, t);
      } else if ((c->kind == T_NAME || c->kind == T_STRING || c->kind == T_INT ||
                  c->kind == T_FLOAT || at_op(p, "[") || at_op(p, "{")) &&
                 !at_name(p, "else") && !at_name(p, "or") && !at_name(p, "and")) {
        if (at_name(p, "is")) jp_fail(p, c->pos, TOK_ETEMPLATE, "you cannot chain tests with is");
        jnode *arg = parse_postfix(p, parse_primary(p));
        nlist l = {0};
        nl_push(p, &l, arg, NULL);
        nl_to(t, &l, true);
      }
      n = t;
    } else if (at_op(p, "(")) {
      n = parse_call(p, pos, n);
    } else {
      return n;
    }
  }
}

/* `name(args) | name2 ...` after {% filter %} or {% set x | %}: a filter chain whose
 * innermost operand (N_BLOCK) stands for the block's rendered text. */
static jnode *parse_block_filter(jparse *p, uint32_t pos)
{
  return parse_filter_expr(p, parse_filter_call(p, pos, mk(p, N_BLOCK, pos)));
}

static jnode *parse_unary(jparse *p, bool with_filter)
{
  enter(p);
  uint32_t pos = cur(p)->pos;
  jnode *n;
  if (skip_op(p, "-")) {
    n = mk(p, N_NEG, pos);
    n->a = parse_unary(p, false);
  } else if (skip_op(p, "+")) {
    n = mk(p, N_POS, pos);
    n->a = parse_unary(p, false);
  } else {
    n = parse_postfix(p, parse_primary(p));
  }
  if (with_filter) n = parse_filter_expr(p, n);
  p->depth--;
  return n;
}

static jnode *bin(jparse *p, int op, uint32_t pos, jnode *a, jnode *b)
{
  jnode *n = mk(p, N_BIN, pos);
  n->op = (uint8_t)op;
  n->a = a;
  n->b = b;
  return n;
}

static jnode *parse_pow(jparse *p)
{
  jnode *n = parse_unary(p, true);
  while (at_op(p, "**")) {
    uint32_t pos = next(p)->pos;
    n = bin(p, OP_POW, pos, n, parse_unary(p, true));
  }
  return n;
}

static jnode *parse_math2(jparse *p)
{
  jnode *n = parse_pow(p);
  for (;;) {
    int op = at_op(p, "*") ? OP_MUL : at_op(p, "/") ? OP_DIV : at_op(p, "//") ? OP_FLOORDIV
           : at_op(p, "%") ? OP_MOD : 0;
    if (!op) return n;
    uint32_t pos = next(p)->pos;
    n = bin(p, op, pos, n, parse_pow(p));
  }
}

static jnode *parse_concat(jparse *p)
{
  jnode *n = parse_math2(p);
  if (!at_op(p, "~")) return n;
  nlist l = {0};
  nl_push(p, &l, n, NULL);
  uint32_t pos = cur(p)->pos;
  while (skip_op(p, "~")) nl_push(p, &l, parse_math2(p), NULL);
  jnode *c = mk(p, N_CONCAT, pos);
  nl_to(c, &l, false);
  return c;
}

static jnode *parse_math1(jparse *p)
{
  jnode *n = parse_concat(p);
  for (;;) {
    int op = at_op(p, "+") ? OP_ADD : at_op(p, "-") ? OP_SUB : 0;
    if (!op) return n;
    uint32_t pos = next(p)->pos;
    n = bin(p, op, pos, n, parse_concat(p));
  }
}

static jnode *parse_compare(jparse *p)
{
  jnode *first = parse_math1(p);
  nlist l = {0};
  uint8_t ops[64];
  size_t n_ops = 0;
  uint32_t pos = cur(p)->pos;
  for (;;) {
    int op = at_op(p, "==") ? CMP_EQ : at_op(p, "!=") ? CMP_NE : at_op(p, "<") ? CMP_LT
           : at_op(p, "<=") ? CMP_LE : at_op(p, ">") ? CMP_GT : at_op(p, ">=") ? CMP_GE
           : at_name(p, "in") ? CMP_IN : 0;
    if (op) {
      p->at++;
    } else if (at_name(p, "not") && tok_is(&p->toks[p->at + 1], T_NAME, "in")) {
      p->at += 2;
      op = CMP_NOTIN;
    } else {
      break;
    }
    if (n_ops == sizeof ops) jp_fail(p, pos, TOK_ELIMIT, "comparison chain too long");
    ops[n_ops++] = (uint8_t)op;
    nl_push(p, &l, parse_math1(p), NULL);
  }
  if (!n_ops) return first;
  jnode *c = mk(p, N_CMP, pos);
  c->a = first;
  nl_to(c, &l, false);
  c->ops = jp_alloc(p, n_ops);
  memcpy(c->ops, ops, n_ops);
  return c;
}

static jnode *parse_not(jparse *p)
{
  if (at_name(p, "not")) {
    uint32_t pos = next(p)->pos;
    enter(p);
    jnode *n = mk(p, N_NOT, pos);
    n->a = parse_not(p);
    p->depth--;
    return n;
  }
  return parse_compare(p);
}

/* operand (word operand)*, left-associative: `and` over `not`, `or` over `and` */
static jnode *parse_logic(jparse *p, const char *word, jnode_kind kind, jnode *(*operand)(jparse *))
{
  jnode *n = operand(p);
  while (at_name(p, word)) {
    uint32_t pos = next(p)->pos;
    jnode *a = mk(p, kind, pos);
    a->a = n;
    a->b = operand(p);
    n = a;
  }
  return n;
}

static jnode *parse_and(jparse *p) { return parse_logic(p, "and", N_AND, parse_not); }
static jnode *parse_or(jparse *p) { return parse_logic(p, "or", N_OR, parse_and); }

static jnode *parse_expr(jparse *p, bool with_cond)
{
  enter(p);
  size_t pending = p->n_pending;
  jnode *n = parse_or(p);
  if (with_cond)
    while (at_name(p, "if")) {
      /* jinja2 compiles all three parts of an inline if in a soft frame */
      bool soft = p->soft;
      p->soft = true;
      p->n_pending = pending;
      uint32_t pos = next(p)->pos;
      jnode *c = mk(p, N_COND, pos);
      c->b = n;
      c->a = parse_or(p);
      if (skip_name(p, "else")) c->c = parse_expr(p, true);
      n = c;
      p->soft = soft;
    }
  p->depth--;
  return n;
}

/* expr, expr, ... (a tuple without parentheses, where jinja2 allows one) */
static jnode *parse_tuple_expr(jparse *p, bool with_cond)
{
  uint32_t pos = cur(p)->pos;
  jnode *first = parse_expr(p, with_cond);
  if (!at_op(p, ",")) return first;
  nlist l = {0};
  nl_push(p, &l, first, NULL);
  while (skip_op(p, ",")) {
    if (cur(p)->kind == T_BLOCK_END || cur(p)->kind == T_VAR_END || at_name(p, "if")) break;
    nl_push(p, &l, parse_expr(p, with_cond), NULL);
  }
  jnode *t = mk(p, N_TUPLE, pos);
  nl_to(t, &l, false);
  return t;
}

/* a, b = ... or (a, b): names only */
static void parse_targets(jparse *p, jnode *n)
{
  nlist l = {0};
  bool paren = skip_op(p, "(");
  do {
    jnode *x = mk(p, N_NAME, cur(p)->pos);
    x->name = expect_name(p);
    nl_push(p, &l, x, x->name);
  } while (skip_op(p, ","));
  if (paren) expect_op(p, ")");
  n->names = l.names;
  n->n_names = l.n;
}

static void expect_block_end(jparse *p)
{
  if (cur(p)->kind != T_BLOCK_END) {
    char b[64];
    jp_fail(p, cur(p)->pos, TOK_ETEMPLATE, "expected end of statement block, got %s",
            tok_desc(cur(p), b, sizeof b));
  }
  p->at++;
}

/* Parses statements until a block tag whose name is in `ends` (left unconsumed, after
 * its "{%"); *end tells which. */
static jnode *parse_body(jparse *p, const char *const *ends, size_t *end);

/* Steps over the tag parse_body stopped at: "{%", its name, "%}". */
static void close_tag(jparse *p)
{
  p->at += 2;
  expect_block_end(p);
}

/* The "%}" ending a block tag's header, the body, and the {% end_tag %} that closes it:
 * for the tags whose body has no middle tags (else, elif), and for a last else. */
static jnode *block_body(jparse *p, const char *end_tag)
{
  expect_block_end(p);
  const char *const ends[] = {end_tag, NULL};
  size_t e;
  jnode *body = parse_body(p, ends, &e);
  close_tag(p);
  return body;
}

static bool tag_is(jparse *p, const char *name)
{
  return cur(p)->kind == T_BLOCK_BEGIN && tok_is(&p->toks[p->at + 1], T_NAME, name);
}

static jnode *parse_statement(jparse *p)
{
  jtok *begin = next(p); /* {% */
  jtok *t = cur(p);
  uint32_t pos = begin->pos;
  if (t->kind != T_NAME) {
    char b[64];
    jp_fail(p, t->pos, TOK_ETEMPLATE, "expected a tag name, got %s", tok_desc(t, b, sizeof b));
  }
  enter(p);
  jnode *n;
  bool soft = p->soft;
  if (skip_name(p, "if")) {
    p->soft = true; /* test and branches: jinja2's if_frame = frame.soft() */
    n = mk(p, N_LIT, pos);
    n->kind = S_IF;
    n->a = parse_expr(p, true);
    expect_block_end(p);
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    size_t e;
    n->b = parse_body(p, ends, &e);
    jnode *tail = n;
    while (e == 0) { /* elif */
      p->at += 2;
      jnode *elif = mk(p, S_IF, cur(p)->pos);
      elif->a = parse_expr(p, true);
      expect_block_end(p);
      elif->b = parse_body(p, ends, &e);
      tail->c = elif;
      tail = elif;
    }
    p->at += 2; /* {% else or {% endif */
    if (e == 1) tail->c = block_body(p, "endif");
    else expect_block_end(p);
  } else if (skip_name(p, "for")) {
    n = mk(p, S_FOR, pos);
    parse_targets(p, n);
    if (!skip_name(p, "in")) jp_fail(p, cur(p)->pos, TOK_ETEMPLATE, "expected 'in' in for loop");
    n->a = parse_tuple_expr(p, false);
    p->soft = false; /* the loop's test, body and else: jinja2's frame.inner() */
    if (skip_name(p, "if")) n->d = parse_expr(p, false);
    if (at_name(p, "recursive"))
      jp_fail(p, cur(p)->pos, TOK_ETEMPLATE, "recursive for loops are not supported");
    expect_block_end(p);
    static const char *const ends[] = {"else", "endfor", NULL};
    size_t e;
    n->b = parse_body(p, ends, &e);
    p->at += 2; /* {% else or {% endfor */
    if (e == 0) n->c = block_body(p, "endfor");
    else expect_block_end(p);
  } else if (skip_name(p, "set")) {
    n = mk(p, S_SET, pos);
    jtok *t1 = cur(p);
    if (t1->kind == T_NAME && tok_is(&p->toks[p->at + 1], T_OP, ".")) {
      n->kind = S_SET_ATTR;
      n->name = expect_name(p);
      p->at++;
      n->names = jp_alloc(p, sizeof *n->names);
      n->names[0] = expect_name(p);
      n->n_names = 1;
      expect_op(p, "=");
      n->a = parse_expr(p, true);
      expect_block_end(p);
    } else {
      parse_targets(p, n);
      if (skip_op(p, "=")) {
        n->a = parse_tuple_expr(p, true);
        expect_block_end(p);
      } else {
        if (n->n_names != 1) jp_fail(p, cur(p)->pos, TOK_ETEMPLATE, "expected '='");
        n->kind = S_SET_BLOCK;
        p->soft = false;
        if (skip_op(p, "|")) n->a = parse_block_filter(p, cur(p)->pos);
        n->b = block_body(p, "endset");
      }
    }
  } else if (skip_name(p, "filter")) {
    n = mk(p, S_FILTER, pos);
    p->soft = false;
    n->a = parse_block_filter(p, cur(p)->pos);
    n->b = block_body(p, "endfilter");
  } else if (skip_name(p, "macro")) {
    p->soft = false;
    n = mk(p, S_MACRO, pos);
    n->name = expect_name(p);
    nlist params = {0};
    expect_op(p, "(");
    while (!at_op(p, ")")) {
      if (params.n) expect_op(p, ",");
      if (at_op(p, ")")) break;
      const char *pn = expect_name(p);
      jnode *def = NULL;
      if (skip_op(p, "=")) def = parse_expr(p, true);
      else if (params.n && params.v[params.n - 1])
        jp_fail(p, cur(p)->pos, TOK_ETEMPLATE, "non-default argument follows default argument");
      nl_push(p, &params, def, pn);
    }
    expect_op(p, ")");
    nl_to(n, &params, true);
    n->b = block_body(p, "endmacro");
  } else if (skip_name(p, "break") || skip_name(p, "continue")) {
    n = mk(p, tok_is(t, T_NAME, "break") ? S_BREAK : S_CONTINUE, pos);
    expect_block_end(p);
  } else if (skip_name(p, "generation")) { /* transformers' AssistantTracker: renders its body */
    p->soft = false; /* a Scope node: jinja2's frame.inner() */
    n = block_body(p, "endgeneration");
  } else {
    jp_fail(p, t->pos, TOK_ETEMPLATE, "tag '%.*s' is not supported", (int)(t->n > 40 ? 40 : t->n), t->p);
  }
  p->soft = soft;
  p->depth--;
  return n;
}

static jnode *parse_body(jparse *p, const char *const *ends, size_t *end)
{
  nlist l = {0};
  uint32_t pos = cur(p)->pos;
  for (;;) {
    check_pending(p); /* the previous tag or print statement is complete */
    jtok *t = cur(p);
    if (t->kind == T_EOF) {
      if (!ends) break;
      jp_fail(p, t->pos, TOK_ETEMPLATE, "unexpected end of template: missing {%% %s %%}", ends[0]);
    }
    if (t->kind == T_DATA) {
      p->at++;
      jnode *d = mk(p, S_TEXT, t->pos);
      d->lit = tok__jv_str(t->p, t->n);
      nl_push(p, &l, d, NULL);
    } else if (t->kind == T_VAR_BEGIN) {
      p->at++;
      jnode *o = mk(p, S_OUT, t->pos);
      o->a = parse_tuple_expr(p, true);
      if (cur(p)->kind != T_VAR_END) {
        char b[64];
        jp_fail(p, cur(p)->pos, TOK_ETEMPLATE, "expected end of print statement, got %s",
                tok_desc(cur(p), b, sizeof b));
      }
      p->at++;
      nl_push(p, &l, o, NULL);
    } else if (t->kind == T_BLOCK_BEGIN) {
      if (ends)
        for (size_t k = 0; ends[k]; k++)
          if (tag_is(p, ends[k])) {
            *end = k;
            jnode *b = mk(p, S_BODY, pos);
            nl_to(b, &l, false);
            return b;
          }
      jtok *name = &p->toks[p->at + 1];
      if (name->kind == T_NAME &&
          (tok_is(name, T_NAME, "endif") || tok_is(name, T_NAME, "endfor") ||
           tok_is(name, T_NAME, "elif") || tok_is(name, T_NAME, "else") ||
           tok_is(name, T_NAME, "endset") || tok_is(name, T_NAME, "endmacro") ||
           tok_is(name, T_NAME, "endfilter")))
        jp_fail(p, name->pos, TOK_ETEMPLATE, "unexpected '%.*s'", (int)name->n, name->p);
      nl_push(p, &l, parse_statement(p), NULL);
    } else {
      char b[64];
      jp_fail(p, t->pos, TOK_ETEMPLATE, "unexpected %s", tok_desc(t, b, sizeof b));
    }
  }
  jnode *b = mk(p, S_BODY, pos);
  nl_to(b, &l, false);
  return b;
}

tok_err tok_chat_template_parse(const char *src, size_t len, tok_chat_template **out,
                                tok_error *err)
{
  if (len > (1u << 20)) {
    if (err) {
      err->code = TOK_ELIMIT;
      err->pos = err->index = TOK_NO_POS;
      snprintf(err->detail, sizeof err->detail, "chat template longer than 1 MiB");
    }
    return TOK_ELIMIT;
  }
  size_t bad;
  if (!tok_utf8_valid(src, len, &bad)) {
    if (err) {
      err->code = TOK_ETEMPLATE;
      err->pos = bad;
      err->index = TOK_NO_POS;
      snprintf(err->detail, sizeof err->detail, "chat template is not valid UTF-8 (byte %zu)", bad);
    }
    return TOK_ETEMPLATE;
  }
  tok_chat_template *t = calloc(1, sizeof *t);
  if (!t) return TOK_ENOMEM;
  jparse *p = calloc(1, sizeof *p);
  if (!p) {
    free(t);
    return TOK_ENOMEM;
  }
  p->a = &t->arena;
  p->err = err;
  if (setjmp(p->exit)) {
    tok_err code = err ? err->code : TOK_ETEMPLATE;
    tok__ja_free(&t->arena);
    free(t->source);
    free(t);
    free(p);
    return code;
  }
  /* newlines: \r\n and \r become \n; one trailing newline is dropped */
  char *s = malloc(len + 1);
  if (!s) jp_fail(p, 0, TOK_ENOMEM, "out of memory");
  t->source = s;
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    if (src[i] == '\r') {
      s[n++] = '\n';
      if (i + 1 < len && src[i + 1] == '\n') i++;
    } else {
      s[n++] = src[i];
    }
  }
  if (n && s[n - 1] == '\n') n--;
  s[n] = 0;
  t->source_len = n;
  p->src = s;
  p->len = n;
  lex(p);
  t->root = parse_body(p, NULL, NULL);
  t->iterates_content = tok__chat_openai_content(t->root);
  free(p);
  *out = t;
  return TOK_OK;
}

void tok_chat_template_free(tok_chat_template *t)
{
  if (!t) return;
  tok__ja_free(&t->arena);
  free(t->source);
  free(t);
}

bool tok_chat_template_iterates_content(const tok_chat_template *t)
{
  return t->iterates_content;
}
