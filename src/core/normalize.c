/*
 * normalize.c — the normalizer stage: Unicode normalization forms (utf8proc), Lowercase,
 * Replace, Prepend, Strip and StripAccents, applied in sequence as Hugging Face's
 * normalizers are.
 *
 * Each step reads one scratch text buffer and writes the other. When offsets are wanted,
 * every output byte also carries the [start, end) range of original bytes it came from
 * (Hugging Face's alignments), so tokens can be mapped back to the text the caller sent.
 * Unicode normalization is then done chunk by chunk, cutting before characters that
 * cannot combine with what precedes them, so each chunk's output maps to that chunk.
 *
 * ASCII text is left alone by every normalization form, so that common case costs one
 * scan. Nothing here allocates outside the scratch.
 */
#include <pthread.h>
#include <stdlib.h>
#include <utf8proc.h>

#include "core/internal.h"

tok_err tok__text_reserve(tok__text_buf *t, size_t len, bool align)
{
  if (len > t->cap) {
    size_t cap = t->cap ? t->cap : 256;
    while (cap < len) cap *= 2;
    uint8_t *s = realloc(t->s, cap);
    if (!s) return TOK_ENOMEM;
    t->s = s;
    t->cap = cap;
  }
  if (align && len > t->align_cap) {
    size_t cap = t->align_cap ? t->align_cap : 256;
    while (cap < len) cap *= 2;
    uint32_t *a = realloc(t->align, 2 * cap * sizeof *a);
    if (!a) return TOK_ENOMEM;
    t->align = a;
    t->align_cap = cap;
  }
  return TOK_OK;
}

/* A text with its alignment: align NULL means byte i came from [base + i, base + i + 1). */
typedef struct span {
  const uint8_t *s;
  size_t len;
  const uint32_t *align;
  uint32_t base;
} span;

static inline uint32_t orig_start(const span *t, size_t i)
{
  return t->align ? t->align[2 * i] : t->base + (uint32_t)i;
}

static inline uint32_t orig_end(const span *t, size_t i) /* end of byte i */
{
  return t->align ? t->align[2 * i + 1] : t->base + (uint32_t)i + 1;
}

/* Appends bytes to out, all aligned to [a, b). */
static void put(tok__text_buf *out, size_t *o, const void *bytes, size_t n, bool align,
                uint32_t a, uint32_t b)
{
  memcpy(out->s + *o, bytes, n);
  if (align)
    for (size_t k = 0; k < n; k++) out->align[2 * (*o + k)] = a, out->align[2 * (*o + k) + 1] = b;
  *o += n;
}

static size_t char_len(uint8_t lead)
{
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

/* ---------------------------------------------------------------------------------------
 * Unicode normalization forms
 */
static utf8proc_option_t form_options(tok__norm_kind k)
{
  switch (k) {
  case TOK__NORM_NFC: return UTF8PROC_STABLE | UTF8PROC_COMPOSE;
  case TOK__NORM_NFD: return UTF8PROC_STABLE | UTF8PROC_DECOMPOSE;
  case TOK__NORM_NFKC: return UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
  default: return UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
  }
}

/* Normalizes in[0..len) and appends the UTF-8 result at out->s + *o (space for
 * 18 * len + 4 bytes must be reserved: NFKD expands a character to at most 18). */
static tok_err form_chunk(tok_scratch *s, utf8proc_option_t opts, const uint8_t *in, size_t len,
                          tok__text_buf *out, size_t *o)
{
  /* decomposition grows a character to at most 18 code points (U+FDFA under NFKD) */
  size_t need = 18 * len + 4;
  if (need > s->u32_cap) {
    size_t cap = s->u32_cap ? s->u32_cap : 1024;
    while (cap < need) cap *= 2;
    uint32_t *grown = realloc(s->u32, cap * sizeof *grown);
    if (!grown) return TOK_ENOMEM;
    s->u32 = grown;
    s->u32_cap = cap;
  }
  utf8proc_int32_t *buf = (utf8proc_int32_t *)s->u32;
  utf8proc_ssize_t n = utf8proc_decompose_custom(in, (utf8proc_ssize_t)len, buf,
                                                 (utf8proc_ssize_t)s->u32_cap, opts, NULL, NULL);
  if (n < 0 || (size_t)n > s->u32_cap) return TOK_EINVAL;
  n = utf8proc_normalize_utf32(buf, n, opts);
  if (n < 0) return TOK_EINVAL;
  for (utf8proc_ssize_t k = 0; k < n; k++)
    *o += (size_t)utf8proc_encode_char(buf[k], out->s + *o);
  return TOK_OK;
}

/* The longest chunk the cut test looks at; a longer one is left whole (still exact, just a
 * coarser alignment), so the test costs O(length) overall. */
#define MAX_CHUNK 256

/* True when the chunk in[chunk..i) may end before the character at in[i]: normalizing the
 * two apart gives what normalizing them together gives (a starter that nothing before it
 * composes with: Hangul L+V composes with a following T, so comparing with the previous
 * character alone is not enough). */
static bool safe_cut(tok_scratch *s, utf8proc_option_t opts, const uint8_t *in, size_t chunk,
                     size_t i, size_t len)
{
  if (in[i] < 0x80) return true; /* ASCII: a starter that is never the second of a pair */
  if (i - chunk > MAX_CHUNK) return false;
  size_t j = i;
  uint32_t c = tok__utf8_next(in, len, &j);
  if (utf8proc_get_property((utf8proc_int32_t)c)->combining_class != 0) return false;
  uint8_t a[18 * (MAX_CHUNK + 8)], b[18 * (MAX_CHUNK + 8)];
  tok__text_buf t1 = {a, 0, sizeof a, NULL, 0}, t2 = {b, 0, sizeof b, NULL, 0};
  size_t o1 = 0, o2 = 0;
  if (form_chunk(s, opts, in + chunk, j - chunk, &t1, &o1) != TOK_OK) return false;
  if (form_chunk(s, opts, in + chunk, i - chunk, &t2, &o2) != TOK_OK) return false;
  if (form_chunk(s, opts, in + i, j - i, &t2, &o2) != TOK_OK) return false;
  return o1 == o2 && memcmp(a, b, o1) == 0;
}

/* Starters with ccc 0 that are the second character of a canonical composition (Unicode's
 * NFC_QC=Maybe among starters; tests/check_normalize.c checks this list against utf8proc's
 * own data), besides the Hangul vowels and trailing consonants, which compose
 * algorithmically. */
static const uint32_t COMPOSING_STARTERS[] = {
    0x9be,   0x9d7,   0xb3e,   0xb56,   0xb57,   0xbbe,   0xbd7,   0xcc2,
    0xcd5,   0xcd6,   0xd3e,   0xd57,   0xdcf,   0xddf,   0x102e,  0x1b35,
    0x11127, 0x1133e, 0x11357, 0x114b0, 0x114ba, 0x114bd, 0x115af, 0x11930,
};

/* Whether the composing form leaves c as it is: a character with a decomposition that is
 * its own composition (é, が, ...; Unicode's NFC_QC or NFKC_QC Yes), not a composition
 * exclusion, a singleton or, for NFKC, a compatibility character. */
static bool composes_back(uint32_t c, tok__norm_kind kind)
{
  uint8_t buf[4], *out = NULL;
  utf8proc_ssize_t n = utf8proc_encode_char((utf8proc_int32_t)c, buf);
  utf8proc_ssize_t m = utf8proc_map(buf, n, &out, form_options(kind));
  bool same = m == n && memcmp(out, buf, (size_t)n) == 0;
  free(out);
  return same;
}

static bool nf_stable_slow(uint32_t c, tok__norm_kind kind)
{
  if (c < 0x80) return true;
  bool compose = kind == TOK__NORM_NFC || kind == TOK__NORM_NFKC;
  bool compat = kind == TOK__NORM_NFKC || kind == TOK__NORM_NFKD;
  if (c >= 0xAC00 && c <= 0xD7A3) return compose; /* Hangul syllables decompose in NFD */
  if (c >= 0x1100 && c <= 0x11FF) return false;   /* jamo compose with each other */
  const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)c);
  if (p->combining_class != 0) return false;
  if (p->decomp_seqindex != UINT16_MAX && (compat || p->decomp_type == 0) &&
      (!compose || !composes_back(c, kind)))
    return false;
  for (size_t i = 0; i < sizeof COMPOSING_STARTERS / sizeof COMPOSING_STARTERS[0]; i++)
    if (c == COMPOSING_STARTERS[i]) return false;
  return true;
}

/* nf_stable_slow for the Basic Multilingual Plane, a bit per code point and form (8 KiB
 * each), filled once on first use: the check runs once per character of every text of a
 * model with a normalizer. */
static const tok__norm_kind FORMS[4] = {TOK__NORM_NFC, TOK__NORM_NFD, TOK__NORM_NFKC, TOK__NORM_NFKD};
static uint64_t STABLE_BMP[4][65536 / 64];
static pthread_once_t STABLE_ONCE = PTHREAD_ONCE_INIT;

static void stable_fill(void)
{
  for (int k = 0; k < 4; k++)
    for (uint32_t c = 0; c < 65536; c++)
      if (nf_stable_slow(c, FORMS[k])) STABLE_BMP[k][c >> 6] |= 1ull << (c & 63);
}

/* The form's bitmap, filled; NULL for a kind that is not a form. */
static const uint64_t *stable_bitmap(tok__norm_kind kind)
{
  int k = 0;
  while (k < 4 && FORMS[k] != kind) k++;
  if (k == 4) return NULL;
  pthread_once(&STABLE_ONCE, stable_fill);
  return STABLE_BMP[k];
}

bool tok__nf_stable(uint32_t c, tok__norm_kind kind)
{
  if (c < 0x80) return true;
  const uint64_t *bmp = c < 65536 ? stable_bitmap(kind) : NULL;
  return bmp ? tok__bit(bmp, c) : nf_stable_slow(c, kind);
}

/* Normalizes without alignment: a stable character (tok__nf_stable) is a starter no
 * normalization changes and nothing before it composes with, so text can be cut before
 * it; runs of stable characters are copied and only the stretches around the others go
 * through utf8proc. */
static tok_err form_fast(tok_scratch *s, tok__norm_kind kind, const span *in, tok__text_buf *out,
                         size_t *o)
{
  utf8proc_option_t opts = form_options(kind);
  const uint64_t *bmp = stable_bitmap(kind);
  size_t copied = 0, seg = 0;
  bool dirty = false;
  for (size_t i = 0; i <= in->len;) {
    if (!dirty && i + 8 < in->len && (tok__load64(in->s + i) & 0x8080808080808080ull) == 0) {
      /* ASCII is stable: skip it eight bytes at a time; the last byte skipped is where a
       * segment would start */
      do i += 8;
      while (i + 8 < in->len && (tok__load64(in->s + i) & 0x8080808080808080ull) == 0);
      seg = i - 1;
    }
    size_t next = i + 1;
    bool stable = true;
    if (i < in->len && in->s[i] >= 0x80) {
      const uint8_t *c = in->s + i;
      /* two- and three-byte characters (the BMP) from the bitmap, decoded here */
      if (bmp && c[0] < 0xE0)
        stable = tok__bit(bmp, (uint32_t)(c[0] & 0x1F) << 6 | (c[1] & 0x3F)), next = i + 2;
      else if (bmp && c[0] < 0xF0)
        stable = tok__bit(bmp, (uint32_t)(c[0] & 0x0F) << 12 | (uint32_t)(c[1] & 0x3F) << 6 | (c[2] & 0x3F)),
        next = i + 3;
      else
        next = i, stable = tok__nf_stable(tok__utf8_next(in->s, in->len, &next), kind);
    }
    if (stable) {
      if (dirty) {
        /* copy the clean stretch before the segment, normalize the segment */
        memcpy(out->s + *o, in->s + copied, seg - copied);
        *o += seg - copied;
        tok_err rc = form_chunk(s, opts, in->s + seg, i - seg, out, o);
        if (rc != TOK_OK) return rc;
        copied = i;
        dirty = false;
      }
      seg = i;
      if (i == in->len) break;
    } else {
      dirty = true;
    }
    i = next;
  }
  memcpy(out->s + *o, in->s + copied, in->len - copied);
  *o += in->len - copied;
  return TOK_OK;
}

static tok_err step_form(tok_scratch *s, tok__norm_kind kind, const span *in, tok__text_buf *out,
                         size_t *o, bool align)
{
  utf8proc_option_t opts = form_options(kind);
  if (!align) return form_fast(s, kind, in, out, o);
  size_t chunk = 0;
  for (size_t i = 0; i <= in->len;) {
    if (i == in->len || (i > chunk && safe_cut(s, opts, in->s, chunk, i, in->len))) {
      size_t before = *o;
      tok_err rc = form_chunk(s, opts, in->s + chunk, i - chunk, out, o);
      if (rc != TOK_OK) return rc;
      uint32_t a = orig_start(in, chunk), b = orig_end(in, i - 1);
      for (size_t k = before; k < *o; k++) out->align[2 * k] = a, out->align[2 * k + 1] = b;
      chunk = i;
      if (i == in->len) break;
    }
    i += char_len(in->s[i]);
  }
  return TOK_OK;
}

/* ---------------------------------------------------------------------------------------
 * The other steps
 */
static tok_err step_lowercase(const span *in, tok__text_buf *out, size_t *o, bool align)
{
  for (size_t i = 0; i < in->len;) {
    size_t start = i;
    uint32_t c = tok__utf8_next(in->s, in->len, &i);
    uint8_t enc[8];
    size_t n;
    if (c == 0x130) { /* the one unconditional multi-character lowercase: "i" + U+0307 */
      memcpy(enc, "i\xcc\x87", 3);
      n = 3;
    } else {
      n = (size_t)utf8proc_encode_char(c < 0x80 ? (uint32_t)(c >= 'A' && c <= 'Z' ? c + 32 : c)
                                                : (uint32_t)utf8proc_tolower((utf8proc_int32_t)c),
                                       enc);
    }
    put(out, o, enc, n, align, orig_start(in, start), orig_end(in, i - 1));
  }
  return TOK_OK;
}

static tok_err step_replace(tok_scratch *s, const tok__norm_step *st, const span *in,
                            tok__text_buf *out, size_t *o, bool align, tok_error *err)
{
  size_t pos = 0, copied = 0, last_match_end = SIZE_MAX;
  while (pos <= in->len) {
    int rc = st->re_jit ? pcre2_jit_match(st->re, in->s, in->len, pos, PCRE2_NO_UTF_CHECK, s->md, s->mctx)
                        : pcre2_match(st->re, in->s, in->len, pos, PCRE2_NO_UTF_CHECK, s->md, s->mctx);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0)
      return tok__fail(err, TOK_EREGEX, pos, TOK_NO_POS, "normalizer Replace gave up at byte %zu", pos);
    const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->md);
    size_t a = ov[0], b = ov[1];
    if (a == b && last_match_end == b) { /* Oniguruma's find_iter: no empty match right after one */
      pos = b < in->len ? b + char_len(in->s[b]) : in->len + 1;
      continue;
    }
    for (size_t k = copied; k < a; k++) put(out, o, in->s + k, 1, align, orig_start(in, k), orig_end(in, k));
    uint32_t oa = a < in->len ? orig_start(in, a) : (in->len ? orig_end(in, in->len - 1) : in->base);
    uint32_t ob = b > a ? orig_end(in, b - 1) : oa;
    put(out, o, st->text, st->text_len, align, oa, ob);
    copied = b;
    pos = b;
    last_match_end = b;
  }
  for (size_t k = copied; k < in->len; k++) put(out, o, in->s + k, 1, align, orig_start(in, k), orig_end(in, k));
  return TOK_OK;
}

static void step_strip(const tok__norm_step *st, const span *in, tok__text_buf *out, size_t *o,
                       bool align)
{
  size_t a = 0, b = in->len;
  while (st->left && a < b) {
    size_t j = a;
    if (!tok__is_whitespace(tok__utf8_next(in->s, in->len, &j))) break;
    a = j;
  }
  while (st->right && b > a) {
    size_t p = b - 1;
    while (p > a && (in->s[p] & 0xC0) == 0x80) p--;
    size_t j = p;
    if (!tok__is_whitespace(tok__utf8_next(in->s, in->len, &j))) break;
    b = p;
  }
  for (size_t k = a; k < b; k++) put(out, o, in->s + k, 1, align, orig_start(in, k), orig_end(in, k));
}

static bool is_ascii(const uint8_t *s, size_t len)
{
  uint8_t any = 0;
  for (size_t i = 0; i < len; i++) any |= s[i];
  return any < 0x80;
}

tok_err tok__normalize(const tok__normalizer *n, tok_scratch *s, const uint8_t *in, size_t len,
                       uint32_t base, bool want_align, tok__text_buf **out, tok_error *err)
{
  span cur = {in, len, NULL, base};
  int which = 0;
  tok__text_buf *result = NULL;
  for (size_t k = 0; k < n->n_steps; k++) {
    const tok__norm_step *st = &n->steps[k];
    bool form = st->kind <= TOK__NORM_NFKD;
    if (form && is_ascii(cur.s, cur.len)) continue;
    if (st->kind == TOK__NORM_PREPEND && cur.len == 0) continue;
    tok__text_buf *o_buf = &s->norm[which];
    /* worst cases: NFKD 18x; Replace (text_len + 1)x; Lowercase 1.5x ("İ"); Prepend +len */
    size_t cap = form ? 18 * cur.len + 8
                 : st->kind == TOK__NORM_REPLACE ? cur.len * (st->text_len + 1) + st->text_len + 8
                 : cur.len * 2 + st->text_len + 8;
    if (tok__text_reserve(o_buf, cap, want_align) != TOK_OK) return tok__nomem(err);
    size_t o = 0;
    tok_err rc = TOK_OK;
    switch (st->kind) {
    case TOK__NORM_NFC: case TOK__NORM_NFD: case TOK__NORM_NFKC: case TOK__NORM_NFKD:
      rc = step_form(s, st->kind, &cur, o_buf, &o, want_align);
      if (rc != TOK_OK)
        return tok__fail(err, rc, TOK_NO_POS, TOK_NO_POS, "Unicode normalization failed");
      break;
    case TOK__NORM_LOWERCASE:
      step_lowercase(&cur, o_buf, &o, want_align);
      break;
    case TOK__NORM_REPLACE:
      if ((rc = step_replace(s, st, &cur, o_buf, &o, want_align, err)) != TOK_OK) return rc;
      break;
    case TOK__NORM_PREPEND: {
      size_t first = char_len(cur.s[0]);
      put(o_buf, &o, st->text, st->text_len, want_align, orig_start(&cur, 0), orig_end(&cur, first - 1));
      for (size_t i = 0; i < cur.len; i++)
        put(o_buf, &o, cur.s + i, 1, want_align, orig_start(&cur, i), orig_end(&cur, i));
      break;
    }
    case TOK__NORM_STRIP:
      step_strip(st, &cur, o_buf, &o, want_align);
      break;
    case TOK__NORM_STRIP_ACCENTS:
      for (size_t i = 0; i < cur.len;) {
        size_t start = i;
        uint32_t c = tok__utf8_next(cur.s, cur.len, &i);
        if (c >= 0x300 && utf8proc_category((utf8proc_int32_t)c) >= UTF8PROC_CATEGORY_MN &&
            utf8proc_category((utf8proc_int32_t)c) <= UTF8PROC_CATEGORY_ME)
          continue;
        for (size_t j = start; j < i; j++)
          put(o_buf, &o, cur.s + j, 1, want_align, orig_start(&cur, j), orig_end(&cur, j));
      }
      break;
    }
    o_buf->len = o;
    cur = (span){o_buf->s, o, want_align ? o_buf->align : NULL, 0};
    result = o_buf;
    which ^= 1;
  }
  *out = result;
  return TOK_OK;
}

tok_err tok__normalize_alloc(const tok__normalizer *n, const char *in, size_t len, char **out,
                             size_t *out_len, tok_error *err)
{
  tok_scratch *s = tok_scratch_new(NULL);
  if (!s) return tok__nomem(err);
  tok__text_buf *r;
  tok_err rc = tok__normalize(n, s, (const uint8_t *)in, len, 0, false, &r, err);
  if (rc == TOK_OK) {
    const uint8_t *text = r ? r->s : (const uint8_t *)in;
    size_t text_len = r ? r->len : len;
    char *copy = malloc(text_len + 1);
    if (!copy) {
      rc = tok__nomem(err);
    } else {
      memcpy(copy, text, text_len);
      copy[text_len] = '\0';
      *out = copy;
      *out_len = text_len;
    }
  }
  tok_scratch_free(s);
  return rc;
}
