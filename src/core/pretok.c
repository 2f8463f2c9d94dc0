/*
 * pretok.c — the pre-tokenizer stage: splits text into the pieces the model encodes one by
 * one.
 *
 * A pre-tokenizer is a sequence of steps, and each step splits every piece the previous
 * step produced (Hugging Face's PreTokenizedString::split). The steps run as a recursion,
 * one level per step, so pieces stream to the model without a list in between; a step
 * that rewrites its piece (Metaspace's replacement, ByteLevel's prefix space) writes into
 * its level's scratch buffer.
 *
 * A split step first cuts its piece into segments, each a pattern match or the text
 * between matches, then groups them by the step's behavior (Isolated, Removed,
 * MergedWithPrevious, MergedWithNext, Contiguous; invert swaps match and gap). Patterns
 * are regexes (PCRE2 with UTF + UCP, JIT), searched as Oniguruma's find_iter does (what
 * Hugging Face uses: an empty match right after a match is skipped), or character classes
 * (digits, whitespace, punctuation, Metaspace's replacement), one segment per character.
 * The patterns nearly every tokenizer uses run on hand-written scanners instead (scan.h),
 * which split exactly as the regex does, faster, with the references' Unicode version.
 *
 * tiktoken's step keeps the regex's matches only: text no alternative matches is dropped,
 * as its find_iter loop does. The subject handed to PCRE2 is always the piece, so `$` and
 * `\s+(?!\S)` see the piece's end as the references' regexes do.
 *
 * The compiled patterns are shared read-only; match data lives in the caller's scratch.
 */
#include "core/internal.h"

tok_err tok__regex_compile(const char *pattern, size_t len, bool literal, pcre2_code **re,
                           bool *jit, const char *what, tok_error *err)
{
  int code;
  PCRE2_SIZE offset;
  /* PCRE2_LITERAL admits only a few other options */
  uint32_t opts = literal ? PCRE2_UTF | PCRE2_LITERAL : PCRE2_UTF | PCRE2_UCP | PCRE2_NEVER_BACKSLASH_C;
  pcre2_code *r = pcre2_compile((PCRE2_SPTR)pattern, len, opts, &code, &offset, NULL);
  if (!r) {
    PCRE2_UCHAR msg[160];
    pcre2_get_error_message(code, msg, sizeof msg);
    return tok__fail(err, TOK_EPATTERN, offset, TOK_NO_POS,
                     "%s: pattern does not compile at offset %zu: %s", what, (size_t)offset,
                     (const char *)msg);
  }
  /* Without JIT (some platforms) pcre2_match still works, just slower. */
  *jit = pcre2_jit_compile(r, PCRE2_JIT_COMPLETE) == 0;
  *re = r;
  return TOK_OK;
}

typedef struct pre_run {
  const tok__pretokenizer *p;
  tok_scratch *s;
  tok__piece_fn emit;
  void *ctx;
  tok_error *err;
  bool want_align;
} pre_run;

/* A piece at one level: bytes and alignment (NULL: byte i is original base + i). */
typedef struct piece {
  const uint8_t *s;
  size_t len;
  const uint32_t *align;
  uint32_t base;
} piece;

/* Where the piece begins in the original text (Metaspace's "first" scheme asks). */
static uint32_t original_start(const piece *p) { return p->align ? p->align[0] : p->base; }

static tok_err run_level(pre_run *r, size_t level, const piece *in);

static tok_err sub_piece(pre_run *r, size_t level, const piece *in, size_t a, size_t b)
{
  if (b <= a) return TOK_OK; /* empty pieces are dropped, as Hugging Face does */
  piece sub = {in->s + a, b - a, in->align ? in->align + 2 * a : NULL, in->base + (uint32_t)a};
  return run_level(r, level + 1, &sub);
}

/* ---------------------------------------------------------------------------------------
 * Grouping segments by behavior. Segments arrive in order and cover the piece.
 */
typedef struct grouper {
  pre_run *r;
  size_t level;
  const piece *in;
  tok__split_behavior behavior;
  bool invert;
  bool have_pending, pending_match, prev_match;
  size_t pa, pb; /* the pending group */
} grouper;

static tok_err flush(grouper *g)
{
  if (!g->have_pending) return TOK_OK;
  g->have_pending = false;
  return sub_piece(g->r, g->level, g->in, g->pa, g->pb);
}

static tok_err segment(grouper *g, size_t a, size_t b, bool is_match)
{
  tok_err rc = TOK_OK;
  is_match ^= g->invert;
  switch (g->behavior) {
  case TOK__SPLIT_ISOLATED:
    return sub_piece(g->r, g->level, g->in, a, b);
  case TOK__SPLIT_REMOVED:
    return is_match ? TOK_OK : sub_piece(g->r, g->level, g->in, a, b);
  case TOK__SPLIT_MERGED_WITH_PREVIOUS:
  case TOK__SPLIT_CONTIGUOUS: {
    /* merged with previous: a match joins the group before it, unless that group ended
     * with a match; contiguous: runs of segments with the same kind become one group */
    bool joins = g->have_pending && (g->behavior == TOK__SPLIT_CONTIGUOUS ? is_match == g->prev_match
                                                                          : is_match && !g->prev_match);
    if (joins) {
      g->pb = b;
    } else {
      rc = flush(g);
      g->have_pending = true, g->pa = a, g->pb = b;
    }
    g->prev_match = is_match;
    return rc;
  }
  case TOK__SPLIT_MERGED_WITH_NEXT:
    /* a match joins the segment after it, when that one is not a match */
    if (g->have_pending && g->pending_match && !is_match) {
      g->pb = b;
      g->pending_match = false;
      return flush(g);
    }
    rc = flush(g);
    if (rc == TOK_OK) {
      g->have_pending = true, g->pa = a, g->pb = b, g->pending_match = is_match;
      if (!is_match) rc = flush(g);
    }
    return rc;
  }
  return TOK_OK;
}

/* ---------------------------------------------------------------------------------------
 * Segment sources
 */
static size_t char_len(uint8_t lead)
{
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

static tok_err regex_segments(grouper *g, pcre2_code *re, bool jit, bool matches_only)
{
  pre_run *r = g->r;
  const piece *in = g->in;
  size_t pos = 0, prev = 0, last_match_end = SIZE_MAX;
  tok_err rc;
  while (pos <= in->len) {
    /* The text was validated once up front, so PCRE2 need not re-check it per call. */
    int m = jit ? pcre2_jit_match(re, in->s, in->len, pos, PCRE2_NO_UTF_CHECK, r->s->md, r->s->mctx)
                : pcre2_match(re, in->s, in->len, pos, PCRE2_NO_UTF_CHECK, r->s->md, r->s->mctx);
    if (m == PCRE2_ERROR_NOMATCH) break;
    if (m < 0) {
      PCRE2_UCHAR msg[120];
      pcre2_get_error_message(m, msg, sizeof msg);
      return tok__fail(r->err, TOK_EREGEX, pos, TOK_NO_POS,
                       "pre-tokenizer gave up at byte %zu of a piece: %s", pos, (const char *)msg);
    }
    /* m == 0 only means the ovector had no room for capture groups; [0], [1] are set */
    const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->s->md);
    size_t a = ov[0], b = ov[1];
    if (a == b && (matches_only || last_match_end == b)) {
      /* tiktoken drops empty matches; Oniguruma refuses one right after a match */
      pos = b < in->len ? b + char_len(in->s[b]) : in->len + 1;
      continue;
    }
    if (matches_only) {
      if ((rc = sub_piece(r, g->level, in, a, b)) != TOK_OK) return rc;
    } else {
      if (prev < a && (rc = segment(g, prev, a, false)) != TOK_OK) return rc;
      if ((rc = segment(g, a, b, true)) != TOK_OK) return rc;
    }
    prev = b;
    pos = b;
    last_match_end = b;
  }
  if (!matches_only && prev < in->len && (rc = segment(g, prev, in->len, false)) != TOK_OK) return rc;
  return TOK_OK;
}

/* A hand-written scanner's matches (scan.h); for most patterns they follow each other
 * with no gap. */
static tok_err scan_segments(grouper *g, tok__scan_kind kind, bool matches_only)
{
  const piece *in = g->in;
  tok_err rc;
  if (TOK__SCAN_GAPLESS(kind)) {
    for (size_t a = 0, b; a < in->len; a = b) {
      b = tok__scan_next(kind, in->s, in->len, a);
      if ((rc = matches_only ? sub_piece(g->r, g->level, in, a, b) : segment(g, a, b, true)) != TOK_OK) return rc;
    }
    return TOK_OK;
  }
  size_t prev = 0, a, b;
  for (size_t pos = 0; tok__scan_find(kind, in->s, in->len, pos, &a, &b); pos = prev = b) {
    if (matches_only) {
      if ((rc = sub_piece(g->r, g->level, in, a, b)) != TOK_OK) return rc;
      continue;
    }
    if (prev < a && (rc = segment(g, prev, a, false)) != TOK_OK) return rc;
    if ((rc = segment(g, a, b, true)) != TOK_OK) return rc;
  }
  if (!matches_only && prev < in->len && (rc = segment(g, prev, in->len, false)) != TOK_OK) return rc;
  return TOK_OK;
}

typedef bool (*char_pred)(const tok__pre_step *st, uint32_t c);

static bool pred_digit(const tok__pre_step *st, uint32_t c) { (void)st; return tok__is_numeric(c); }
static bool pred_space(const tok__pre_step *st, uint32_t c) { (void)st; return tok__is_whitespace(c); }
static bool pred_punct(const tok__pre_step *st, uint32_t c) { (void)st; return tok__is_punctuation(c); }

static tok_err char_segments(grouper *g, const tok__pre_step *st, char_pred pred)
{
  const piece *in = g->in;
  size_t prev = 0;
  tok_err rc;
  for (size_t i = 0; i < in->len;) {
    size_t start = i;
    uint32_t c = tok__utf8_next(in->s, in->len, &i);
    if (!pred(st, c)) continue;
    if (prev < start && (rc = segment(g, prev, start, false)) != TOK_OK) return rc;
    if ((rc = segment(g, start, i, true)) != TOK_OK) return rc;
    prev = i;
  }
  if (prev < in->len && (rc = segment(g, prev, in->len, false)) != TOK_OK) return rc;
  return TOK_OK;
}

/* Metaspace's split: a segment per occurrence of the replacement character. */
static tok_err replacement_segments(grouper *g, const tok__pre_step *st)
{
  const piece *in = g->in;
  size_t prev = 0, rl = st->replacement_len;
  tok_err rc;
  for (size_t i = 0; i + rl <= in->len;) {
    if (memcmp(in->s + i, st->replacement, rl) != 0) {
      i += char_len(in->s[i]);
      continue;
    }
    if (prev < i && (rc = segment(g, prev, i, false)) != TOK_OK) return rc;
    if ((rc = segment(g, i, i + rl, true)) != TOK_OK) return rc;
    i += rl;
    prev = i;
  }
  if (prev < in->len && (rc = segment(g, prev, in->len, false)) != TOK_OK) return rc;
  return TOK_OK;
}

/* ---------------------------------------------------------------------------------------
 * Rewriting steps
 */

/* Builds the piece for a rewriting step in the level's buffer: prefix (aligned to an
 * empty range at the piece's start), then the piece with every `from` replaced by `to`. */
static tok_err rewrite(pre_run *r, size_t level, const piece *in, const char *prefix,
                       size_t prefix_len, char from, const char *to, size_t to_len, piece *out)
{
  tok__text_buf *t = &r->s->level[level];
  size_t cap = prefix_len + in->len * (to_len > 1 ? to_len : 1) + 1;
  if (tok__text_reserve(t, cap, r->want_align) != TOK_OK) return tok__nomem(r->err);
  size_t o = 0;
  uint32_t first = in->align ? in->align[0] : in->base;
  for (size_t k = 0; k < prefix_len; k++, o++) {
    t->s[o] = (uint8_t)prefix[k];
    if (r->want_align) t->align[2 * o] = t->align[2 * o + 1] = first;
  }
  for (size_t i = 0; i < in->len; i++) {
    uint32_t a = in->align ? in->align[2 * i] : in->base + (uint32_t)i;
    uint32_t b = in->align ? in->align[2 * i + 1] : in->base + (uint32_t)i + 1;
    const char *src = in->s[i] == (uint8_t)from && to ? to : (const char *)in->s + i;
    size_t n = in->s[i] == (uint8_t)from && to ? to_len : 1;
    for (size_t k = 0; k < n; k++, o++) {
      t->s[o] = (uint8_t)src[k];
      if (r->want_align) t->align[2 * o] = a, t->align[2 * o + 1] = b;
    }
  }
  t->len = o;
  *out = (piece){t->s, o, r->want_align ? t->align : NULL, 0};
  if (!r->want_align) out->base = first; /* offsets unused; keep something sane */
  return TOK_OK;
}

static tok_err run_level(pre_run *r, size_t level, const piece *in)
{
  if (level == r->p->n_steps) {
    r->s->stats.pieces++;
    return r->emit(r->ctx, in->s, in->len, in->align, in->base);
  }
  const tok__pre_step *st = &r->p->steps[level];
  grouper g = {r, level, in, st->behavior, st->invert, false, false, false, 0, 0};
  piece rewritten;
  tok_err rc;
  switch (st->kind) {
  case TOK__PRE_TIKTOKEN:
    if (st->scan && !r->s->regex_only) return scan_segments(&g, st->scan, true);
    return regex_segments(&g, st->re, st->re_jit, true);
  case TOK__PRE_SPLIT:
  case TOK__PRE_WHITESPACE:
    rc = st->scan && !r->s->regex_only ? scan_segments(&g, st->scan, false)
                                       : regex_segments(&g, st->re, st->re_jit, false);
    break;
  case TOK__PRE_DIGITS:
    rc = char_segments(&g, st, pred_digit);
    break;
  case TOK__PRE_WHITESPACE_SPLIT:
    rc = char_segments(&g, st, pred_space);
    break;
  case TOK__PRE_PUNCTUATION:
    rc = char_segments(&g, st, pred_punct);
    break;
  case TOK__PRE_BYTELEVEL:
    if (st->add_prefix_space && in->s[0] != ' ') {
      if ((rc = rewrite(r, level, in, " ", 1, 0, NULL, 0, &rewritten)) != TOK_OK) return rc;
      in = &rewritten;
      g.in = in;
    }
    if (!st->re) return run_level(r, level + 1, in);
    rc = st->scan && !r->s->regex_only ? scan_segments(&g, st->scan, false)
                                       : regex_segments(&g, st->re, st->re_jit, false);
    break;
  case TOK__PRE_METASPACE: {
    bool prepend = st->prepend == TOK__PREPEND_ALWAYS ||
                   (st->prepend == TOK__PREPEND_FIRST && original_start(in) == 0);
    /* the replacement is never a space, so "starts with it" is checked after replacing */
    bool starts = in->s[0] == ' ' || (in->len >= st->replacement_len &&
                                      memcmp(in->s, st->replacement, st->replacement_len) == 0);
    if ((rc = rewrite(r, level, in, st->replacement, prepend && !starts ? st->replacement_len : 0,
                      ' ', st->replacement, st->replacement_len, &rewritten)) != TOK_OK)
      return rc;
    in = &rewritten;
    g.in = in;
    if (!st->split) return run_level(r, level + 1, in);
    rc = replacement_segments(&g, st);
    break;
  }
  default:
    return tok__fail(r->err, TOK_EINVAL, TOK_NO_POS, TOK_NO_POS, "unknown pre-tokenizer step");
  }
  if (rc == TOK_OK) rc = flush(&g);
  return rc;
}

/* The scanner when the whole pre-tokenizer is one gapless scanned pattern whose matches
 * are the pieces (tiktoken's, or a Split that isolates them), followed at most by
 * ByteLevel steps that change nothing (no regex, no prefix space): the common case, which
 * the encoder runs as tok__scan_batch, without the per-piece levels and grouping. */
tok__scan_kind tok__pretok_direct(const tok__pretokenizer *p, const tok_scratch *s)
{
  if (!p->n_steps || s->regex_only) return TOK__SCAN_NONE;
  const tok__pre_step *st = &p->steps[0];
  if (!TOK__SCAN_GAPLESS(st->scan) ||
      !(st->kind == TOK__PRE_TIKTOKEN ||
        (st->kind == TOK__PRE_SPLIT && !st->invert && st->behavior == TOK__SPLIT_ISOLATED)))
    return TOK__SCAN_NONE;
  for (size_t i = 1; i < p->n_steps; i++)
    if (p->steps[i].kind != TOK__PRE_BYTELEVEL || p->steps[i].re || p->steps[i].add_prefix_space)
      return TOK__SCAN_NONE;
  return st->scan;
}

tok_err tok__pretokenize(const tok__pretokenizer *p, tok_scratch *s, const uint8_t *text,
                         size_t len, const uint32_t *align, uint32_t base, bool want_align,
                         tok__piece_fn emit, void *ctx, tok_error *err)
{
  if (len == 0) return TOK_OK;
  pre_run r = {p, s, emit, ctx, err, want_align};
  piece in = {text, len, align, base};
  return run_level(&r, 0, &in);
}
