/*
 * encode.c — runs the pipeline: text -> ids (tok_encode, tok_count), with the per-thread
 * scratch it works in.
 *
 * Encoding a text: validate UTF-8 once; find the added tokens matched as written (all of
 * tiktoken's specials, and Hugging Face's tokens with normalized=false); normalize each
 * stretch of text between them and find the added tokens matched after normalization;
 * pre-tokenize what remains into pieces; for each piece one hash probe settles the common
 * case (the piece is a token), otherwise the merge loop runs (bpe.c); finally the
 * post-processor's ids go around the result. Ids go into the scratch's output array,
 * which grows to the longest result seen and is reused.
 */
#include <pthread.h>
#include <stdlib.h>

#include "core/internal.h"

/* ---------------------------------------------------------------------------------------
 * Scratch
 */
tok_scratch *tok_scratch_new(const tok_limits *limits)
{
  tok_scratch *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  if (limits) s->limits = *limits;
  if (!s->limits.jit_stack_max) s->limits.jit_stack_max = (size_t)1 << 20;
  s->md = pcre2_match_data_create(1, NULL);
  s->mctx = pcre2_match_context_create(NULL);
  s->jit_stack = pcre2_jit_stack_create(32 * 1024, s->limits.jit_stack_max, NULL);
  if (!s->md || !s->mctx || !s->jit_stack) {
    tok_scratch_free(s);
    return NULL;
  }
  pcre2_jit_stack_assign(s->mctx, NULL, s->jit_stack);
  if (s->limits.match_limit) pcre2_set_match_limit(s->mctx, s->limits.match_limit);
  return s;
}

static void text_buf_free(tok__text_buf *t)
{
  free(t->s);
  free(t->align);
  memset(t, 0, sizeof *t);
}

static void free_parts(tok_scratch *s)
{
  free(s->part_id), free(s->part_pair), free(s->part_next), free(s->part_prev);
  free(s->part_fixed), free(s->heap_pos), free(s->heap_slot);
  s->part_id = s->part_pair = s->part_next = s->part_prev = NULL;
  s->part_fixed = NULL;
  s->heap_pos = s->heap_slot = NULL;
  s->piece_cap = 0;
}

/* Frees the scratch's growable buffers that hold more than keep_bytes (all of them when
 * `all`, whatever their recorded size: a buffer half-grown by a failed allocation too).
 * tok_scratch_trim and tok_scratch_free both come here, so a new buffer is released in
 * one place. */
static void release_buffers(tok_scratch *s, size_t keep_bytes, bool all)
{
#define OVER(bytes) (all || (bytes) > keep_bytes)
  if (OVER(s->ids_cap * 3 * sizeof(uint32_t))) {
    free(s->ids);
    free(s->offsets);
    s->ids = s->offsets = NULL;
    s->ids_cap = 0;
  }
  /* the part arrays: 6 of 4 bytes and 1 of 1 byte per piece byte */
  if (OVER(s->piece_cap * 25)) free_parts(s);
  for (int i = 0; i < 2; i++) {
    if (OVER(s->norm[i].cap * 9)) text_buf_free(&s->norm[i]);
    if (OVER(s->dec[i].cap)) tok_buf_free(&s->dec[i]);
  }
  for (int i = 0; i < TOK__MAX_PRE_STEPS; i++)
    if (OVER(s->level[i].cap * 9)) text_buf_free(&s->level[i]);
  if (OVER(s->dec_tok_cap[0] * 8) || OVER(s->dec_tok_cap[1] * 8)) {
    free(s->dec_tok), free(s->dec_tok2);
    s->dec_tok = s->dec_tok2 = NULL;
    s->dec_tok_cap[0] = s->dec_tok_cap[1] = 0;
  }
  if (OVER(s->pc_cap * 12)) {
    free(s->pc_pos), free(s->pc_key);
    s->pc_pos = NULL, s->pc_key = NULL;
    s->pc_cap = 0;
  }
  if (OVER(s->u32_cap * 4)) {
    free(s->u32);
    s->u32 = NULL;
    s->u32_cap = 0;
  }
#undef OVER
}

void tok_scratch_free(tok_scratch *s)
{
  if (!s) return;
  pcre2_match_data_free(s->md);
  pcre2_match_context_free(s->mctx);
  pcre2_jit_stack_free(s->jit_stack);
  release_buffers(s, 0, true);
  free(s->piece_cache);
  free(s);
}

void tok_scratch_trim(tok_scratch *s, size_t keep_bytes)
{
  release_buffers(s, keep_bytes, false);
}

tok_work_stats tok_scratch_stats(const tok_scratch *s) { return s->stats; }
void tok_scratch_stats_reset(tok_scratch *s) { memset(&s->stats, 0, sizeof s->stats); }

static tok_err ids_grow(tok_scratch *s, size_t need, bool want_offsets, tok_error *err);

/* Makes room for `extra` more ids (and offsets when want_offsets). */
static inline tok_err ids_reserve(tok_scratch *s, size_t len, size_t extra, bool want_offsets,
                                  tok_error *err)
{
  size_t need = len + extra;
  if (need <= s->ids_cap && (!want_offsets || s->offsets)) return TOK_OK;
  return ids_grow(s, need, want_offsets, err);
}

static tok_err ids_grow(tok_scratch *s, size_t need, bool want_offsets, tok_error *err)
{
  size_t cap = s->ids_cap ? s->ids_cap : 1024;
  while (cap < need) cap *= 2;
  if (cap > SIZE_MAX / 16) return tok__fail(err, TOK_ENOMEM, TOK_NO_POS, TOK_NO_POS, "too many tokens");
  if (cap != s->ids_cap) {
    uint32_t *grown = realloc(s->ids, cap * sizeof *grown);
    if (!grown) return tok__fail(err, TOK_ENOMEM, TOK_NO_POS, TOK_NO_POS, "out of memory for ids");
    s->ids = grown;
    if (s->offsets) {
      uint32_t *o = realloc(s->offsets, 2 * cap * sizeof *o);
      if (!o) return tok__fail(err, TOK_ENOMEM, TOK_NO_POS, TOK_NO_POS, "out of memory for ids");
      s->offsets = o;
    }
    s->ids_cap = cap;
  }
  if (want_offsets && !s->offsets) {
    if (!(s->offsets = malloc(2 * s->ids_cap * sizeof *s->offsets)))
      return tok__fail(err, TOK_ENOMEM, TOK_NO_POS, TOK_NO_POS, "out of memory for offsets");
  }
  return TOK_OK;
}

/* ---------------------------------------------------------------------------------------
 * Special-token sets
 */
tok_err tok_special_set_add(const tok_encoding *enc, tok_special_set *set, const char *text,
                            size_t text_len, tok_error *err)
{
  for (size_t k = 0; k < enc->info.n_special; k++)
    if (enc->info.special[k].text_len == text_len &&
        memcmp(enc->info.special[k].text, text, text_len) == 0) {
      set->bits[k >> 6] |= 1ull << (k & 63);
      return TOK_OK;
    }
  return tok__fail(err, TOK_EUNKNOWN_SPECIAL, TOK_NO_POS, TOK_NO_POS,
                   "\"%.*s\" is not a special token of %s", (int)(text_len > 64 ? 64 : text_len),
                   text, enc->info.name);
}

void tok_special_set_none(const tok_encoding *enc, tok_special_set *set)
{
  memset(set, 0, sizeof *set);
  set->n = enc->info.n_special;
}

void tok_special_set_all(const tok_encoding *enc, tok_special_set *set)
{
  tok_special_set_none(enc, set);
  for (size_t k = 0; k < set->n; k++) set->bits[k >> 6] |= 1ull << (k & 63);
}

tok_err tok_special_set_parse(const tok_encoding *enc, const char *spec, size_t spec_len,
                              tok_special_set *set, tok_error *err)
{
  tok_special_set s;
  if (spec_len == 3 && memcmp(spec, "all", 3) == 0) {
    tok_special_set_all(enc, set);
    return TOK_OK;
  }
  tok_special_set_none(enc, &s);
  if (!(spec_len == 4 && memcmp(spec, "none", 4) == 0)) {
    for (size_t p = 0; p < spec_len;) {
      const char *comma = memchr(spec + p, ',', spec_len - p);
      size_t len = comma ? (size_t)(comma - (spec + p)) : spec_len - p;
      tok_err rc = tok_special_set_add(enc, &s, spec + p, len, err);
      if (rc != TOK_OK) return rc;
      p += len + 1;
    }
  }
  *set = s;
  return TOK_OK;
}

/* ---------------------------------------------------------------------------------------
 * Encode
 */
typedef struct encode_state {
  const tok_encoding *enc;
  tok_scratch *s;
  const tok_encode_opts *opts;
  const tok_special_set *allowed; /* NULL: all */
  size_t len;       /* ids in the scratch */
  size_t total;     /* tokens produced, including those dropped by count-only mode */
  bool keep;        /* keep ids (encode) or only count them */
  bool stopped;
  tok_error *err;
  tok__prefix_job *pc; /* the prefix cache's job, or NULL */
  size_t pc_start;     /* where the text's own ids begin in the scratch */
} encode_state;

static inline tok_err check_limits(encode_state *st, size_t at)
{
  if (st->opts->stop_after && st->total > st->opts->stop_after) {
    st->stopped = true;
    return TOK_OK;
  }
  size_t max = st->s->limits.max_tokens_out;
  if (max && st->total > max)
    return tok__fail(st->err, TOK_ELIMIT, at, TOK_NO_POS,
                     "more than %zu tokens (limit reached at byte %zu)", max, at);
  return TOK_OK;
}

/* Appends one id with its original [a, b) range. */
static tok_err push_id(encode_state *st, uint32_t id, uint32_t a, uint32_t b)
{
  if (!st->keep) st->len = 0;
  tok_err rc = ids_reserve(st->s, st->len, 1, st->opts->want_offsets, st->err);
  if (rc != TOK_OK) return rc;
  st->s->ids[st->len] = id;
  if (st->opts->want_offsets) st->s->offsets[2 * st->len] = a, st->s->offsets[2 * st->len + 1] = b;
  st->len++;
  st->total++;
  return check_limits(st, b);
}

/* A piece's model stage failed: the error's position into the original text. align and
 * base are the piece's (as tok__piece_fn has them). */
static tok_err piece_error(encode_state *st, tok_err rc, const uint32_t *align, uint32_t base)
{
  if (st->err && st->err->pos != TOK_NO_POS)
    st->err->pos = align ? align[2 * st->err->pos] : base + st->err->pos;
  return rc;
}

/* A piece of n bytes put `produced` ids at the scratch's ids + st->len (with offsets
 * relative to the piece): offsets into the original text, counts, limits. */
static inline tok_err piece_done(encode_state *st, size_t produced, size_t n, const uint32_t *align,
                                 uint32_t base)
{
  if (st->opts->want_offsets) {
    uint32_t *offs = st->s->offsets + 2 * st->len;
    for (size_t k = 0; k < produced; k++) {
      uint32_t a = offs[2 * k], b = offs[2 * k + 1];
      offs[2 * k] = align ? align[2 * a] : base + a;
      offs[2 * k + 1] = align ? align[2 * (b - 1) + 1] : base + b;
    }
  }
  st->len += produced;
  st->total += produced;
  return check_limits(st, align ? align[2 * (n - 1) + 1] : base + (uint32_t)n);
}

/* The model stage for one piece (tok__piece_fn). */
static tok_err on_piece(void *ctx, const uint8_t *piece, size_t n, const uint32_t *align,
                        uint32_t base)
{
  encode_state *st = ctx;
  tok_scratch *s = st->s;
  bool offsets = st->opts->want_offsets;
  if (st->stopped) return TOK_OK;
  if (!st->keep) st->len = 0;
  tok_err rc = ids_reserve(s, st->len, n, offsets, st->err);
  if (rc != TOK_OK) return rc;
  uint32_t *ids = s->ids + st->len, *offs = offsets ? s->offsets + 2 * st->len : NULL;
  const tok__model *m = st->enc->model;
  struct tok__piece_entry want, *e = tok__piece_find(s, m, piece, n, &want);
  size_t produced = tok__piece_cached(s, e, &want, n, ids, offs);
  if (!produced) {
    rc = tok__bpe_encode_piece(m, s, piece, n, ids, offs, &produced, st->err);
    if (rc != TOK_OK) return piece_error(st, rc, align, base);
    tok__piece_remember(e, &want, ids, produced, offs && offs[0] == 0 && offs[1] == n);
  }
  return piece_done(st, produced, n, align, base);
}

/* Pieces per scanner call on the direct path. */
#define PIECE_BATCH 64

/* The pre-tokenizer's pieces when one scanner gives them (tok__pretok_direct): the same
 * model stage as on_piece, without a call per piece, with the piece cache in front and the
 * whole-token lookup (most pieces) inline. (Looking a batch's pieces up in passes — hash
 * and prefetch the pilots, then the slots, then compare — was measured 15% slower on
 * English: the processor already overlaps the lookups of consecutive pieces.) */
static tok_err encode_direct(encode_state *st, tok__scan_kind kind, const uint8_t *t, size_t n,
                             const uint32_t *align, uint32_t base)
{
  tok_scratch *s = st->s;
  const tok__model *m = st->enc->model;
  bool offsets = st->opts->want_offsets;
  size_t ends[PIECE_BATCH], a = 0, k;
  while (!st->stopped && (k = tok__scan_batch(kind, t, n, a, ends, PIECE_BATCH)) > 0) {
    s->stats.pieces += k;
    if (!st->keep) st->len = 0;
    /* at most one id per byte */
    tok_err rc = ids_reserve(s, st->len, ends[k - 1] - a, offsets, st->err);
    if (rc != TOK_OK) return rc;
    for (size_t i = 0; i < k && !st->stopped; a = ends[i++]) {
      const uint8_t *piece = t + a;
      size_t len = ends[i] - a;
      uint32_t *ids = s->ids + st->len, *offs = offsets ? s->offsets + 2 * st->len : NULL;
      const uint32_t *piece_align = align ? align + 2 * a : NULL;
      struct tok__piece_entry want, *e = tok__piece_find(s, m, piece, len, &want);
      size_t produced = tok__piece_cached(s, e, &want, len, ids, offs);
      if (!produced) {
        uint32_t id = tok__bpe_whole(m, piece, len);
        produced = 1;
        if (id != TOK__NONE) {
          s->stats.direct_hits++;
          ids[0] = id;
          if (offs) offs[0] = 0, offs[1] = (uint32_t)len;
        } else if ((rc = tok__bpe_encode_rest(m, s, piece, len, ids, offs, &produced, st->err)) != TOK_OK) {
          return piece_error(st, rc, piece_align, base + (uint32_t)a);
        }
        tok__piece_remember(e, &want, ids, produced, id != TOK__NONE || (offs && offs[0] == 0 && offs[1] == len));
      }
      if ((rc = piece_done(st, produced, len, piece_align, base + (uint32_t)a)) != TOK_OK) return rc;
    }
  }
  return TOK_OK;
}

/* The next allowed added token of group mt in t[pos..n): its index, at [*a, *b); or -1,
 * with *a = *b = n (the rest of the text is ordinary). */
static long next_added(const encode_state *st, const tok__matcher *mt, const uint8_t *t, size_t n, size_t pos,
                       size_t *a, size_t *b)
{
  long k = mt->n_nodes > 1 ? tok__added_next(mt, st->enc->added, st->allowed, t, n, pos, pos, a, b) : -1;
  if (k < 0) *a = *b = n;
  return k;
}

/* Normalized added tokens, then pre-tokenization, over one stretch of (normalized) text.
 * align NULL: byte i is original base + i. */
static tok_err encode_stretch(encode_state *st, const uint8_t *t, size_t n, const uint32_t *align,
                              uint32_t base)
{
  const tok_encoding *enc = st->enc;
  bool want = st->opts->want_offsets || enc->needs_align;
  size_t pos = 0;
  tok_err rc;
  while (!st->stopped) {
    size_t a, b;
    long k = next_added(st, &enc->norm_tokens, t, n, pos, &a, &b);
    if (a > pos) {
      tok__scan_kind kind = tok__pretok_direct(&enc->pre, st->s);
      rc = kind != TOK__SCAN_NONE
               ? encode_direct(st, kind, t + pos, a - pos, align ? align + 2 * pos : NULL, base + (uint32_t)pos)
               : tok__pretokenize(&enc->pre, st->s, t + pos, a - pos, align ? align + 2 * pos : NULL,
                                  base + (uint32_t)pos, want, on_piece, st, st->err);
      if (rc != TOK_OK) return rc;
    }
    if (k < 0 || st->stopped) break;
    uint32_t oa = align ? align[2 * a] : base + (uint32_t)a;
    uint32_t ob = align ? align[2 * (b - 1) + 1] : base + (uint32_t)b;
    if ((rc = push_id(st, enc->added[k].id, oa, ob)) != TOK_OK) return rc;
    pos = b;
  }
  return TOK_OK;
}

/* One stretch of the original text between raw-matched added tokens. */
static tok_err encode_segment(encode_state *st, const uint8_t *text, size_t from, size_t to)
{
  const tok_encoding *enc = st->enc;
  if (enc->normalizer.n_steps == 0)
    return encode_stretch(st, text + from, to - from, NULL, (uint32_t)from);
  bool align = st->opts->want_offsets || enc->needs_align;
  tok__text_buf *norm;
  tok_err rc = tok__normalize(&enc->normalizer, st->s, text + from, to - from, (uint32_t)from,
                              align, &norm, st->err);
  if (rc != TOK_OK) return rc;
  if (!norm) return encode_stretch(st, text + from, to - from, NULL, (uint32_t)from); /* unchanged */
  /* the pre-tokenizer's rewriting steps use other buffers, so norm stays valid */
  return encode_stretch(st, norm->s, norm->len, align ? norm->align : NULL, (uint32_t)from);
}

static tok_err check_disallowed(const tok_encoding *enc, const tok_special_set *allowed,
                                const uint8_t *text, size_t len, tok_error *err)
{
  const tok__matcher *groups[2] = {&enc->raw_tokens, &enc->norm_tokens};
  for (int g = 0; g < 2; g++) {
    size_t at = 0, a, b;
    for (long k; (k = tok__added_next(groups[g], enc->added, NULL, text, len, at, at, &a, &b)) >= 0; at = b) {
      const tok__added *t = &enc->added[k];
      if (t->special && (!allowed || !tok_special_set_has(allowed, t->special_index)))
        return tok__fail(err, TOK_EDISALLOWED_SPECIAL, a, TOK_NO_POS,
                         "special token %s at byte offset %zu is not allowed", t->content, a);
    }
  }
  return TOK_OK;
}

/* text[from..to): added tokens matched as written, and the segments between them. */
static tok_err encode_range(encode_state *st, const uint8_t *text, size_t from, size_t to)
{
  const tok_encoding *enc = st->enc;
  tok_err rc;
  size_t pos = from;
  while (!st->stopped) {
    size_t a, b;
    long k = next_added(st, &enc->raw_tokens, text, to, pos, &a, &b);
    if (a > pos && (rc = encode_segment(st, text, pos, a)) != TOK_OK) return rc;
    if (k < 0 || st->stopped) break;
    if ((rc = push_id(st, enc->added[k].id, (uint32_t)a, (uint32_t)b)) != TOK_OK) return rc;
    pos = b;
    if (st->pc && b == st->pc->last_bound) st->pc->last_bound_ids = st->len - st->pc_start;
  }
  return TOK_OK;
}

/* ---------------------------------------------------------------------------------------
 * Through the prefix cache (prefix.c): a remembered prefix's ids, then the rest from its
 * boundary on, exactly as encode_range would go on from there; then the text is
 * remembered (when ids are kept).
 */
static uint32_t *prefix_room(void *ctx, size_t n)
{
  encode_state *st = ctx;
  return ids_reserve(st->s, st->len, n, false, st->err) == TOK_OK ? st->s->ids + st->len : NULL;
}

static tok_err encode_cached(encode_state *st, const uint8_t *text, size_t len)
{
  const tok_prefix_cache *cache = st->opts->prefix_cache;
  tok__prefix_job job;
  tok_err rc = tok__prefix_plan(cache, st->enc, st->allowed, st->s, text, len, &job, st->err);
  if (rc != TOK_OK) return rc;
  size_t start = st->len;
  if (tok__prefix_lookup(cache, st->enc, st->s, text, len, &job, st->keep ? prefix_room : NULL, st)) {
    if (st->keep) st->len += job.hit_ids;
    st->total += job.hit_ids;
    if ((rc = check_limits(st, job.hit_bound)) != TOK_OK || job.exact || st->stopped) return rc;
    if (job.hit_bound == job.last_bound) job.last_bound_ids = job.hit_ids;
  }
  st->pc = &job;
  st->pc_start = start;
  rc = encode_range(st, text, job.hit_bound, len);
  st->pc = NULL;
  if (rc != TOK_OK || !st->keep || st->stopped) return rc;
  if (!job.n_bounds) job.last_bound_ids = st->len - start;
  tok__prefix_insert(cache, st->enc, text, len, st->s->ids + start, st->len - start, &job);
  return TOK_OK;
}

/* ---------------------------------------------------------------------------------------
 * One text on several threads (tok_split)
 */
/* A letter outside the CJK blocks (where DeepSeek-V3's CJK step never matches) that the
 * encoding's normalization forms leave as it is. */
static bool split_letter(const tok_encoding *enc, const uint8_t *t, size_t len, size_t i)
{
  uint32_t c = tok__utf8_next(t, len, &i);
  unsigned k = tok__uc_class(c);
  if (!(k == TOK__UC_LU || k == TOK__UC_LL || k == TOK__UC_LMO) || c >= 0x2E80) return false;
  for (size_t s = 0; s < enc->normalizer.n_steps; s++)
    if (!tok__nf_stable(c, enc->normalizer.steps[s].kind)) return false;
  return true;
}

/* The first position in [from, to) where a part may start: a space with a letter before
 * and after it (see encoding.c, split_safe), or `to` when there is none. */
size_t tok__split_point(const tok_encoding *enc, const uint8_t *t, size_t len, size_t from, size_t to)
{
  if (from < 1) from = 1;
  for (size_t q = from; q < to && q + 1 < len; q++) {
    const uint8_t *sp = memchr(t + q, ' ', to - q);
    if (!sp) break;
    q = (size_t)(sp - t);
    if (q == 0 || q + 1 >= len || q >= to) continue;
    size_t before = q - 1;
    while (before > 0 && (t[before] & 0xC0) == 0x80) before--;
    if (split_letter(enc, t, len, before) && split_letter(enc, t, len, q + 1)) return q;
  }
  return to;
}

#define TOK_SPLIT_MAX_PARTS 64

typedef struct part_job {
  encode_state st;
  tok_encode_opts opts;
  const uint8_t *text;
  size_t from, to;
  tok_err rc;
  pthread_t thread;
  bool started;
} part_job;

static void *part_main(void *arg)
{
  part_job *j = arg;
  j->rc = encode_range(&j->st, j->text, j->from, j->to);
  return NULL;
}

/* Cuts text into parts (at most n_helpers + 1), encodes part 0 here and the others on
 * threads, and appends their ids. Any failure beyond part 0 is redone in order from the
 * end of part 0, which gives exactly the one-thread error (or result, when a thread could
 * not be started). */
static tok_err encode_parallel(encode_state *st, const uint8_t *text, size_t len)
{
  const tok_split *sp = st->opts->split;
  size_t min_part = sp->min_part ? sp->min_part : TOK_SPLIT_MIN_PART;
  size_t n = len / min_part;
  if (n > (size_t)sp->n_helpers + 1) n = (size_t)sp->n_helpers + 1;
  if (n < 2) return encode_range(st, text, 0, len);
  size_t cut[TOK_SPLIT_MAX_PARTS + 1], parts = 0;
  if (n > TOK_SPLIT_MAX_PARTS) n = TOK_SPLIT_MAX_PARTS;
  cut[0] = 0;
  for (size_t i = 1; i < n; i++) {
    size_t q = tok__split_point(st->enc, text, len, i * (len / n), len - min_part / 2);
    if (q >= len - min_part / 2 || q - cut[parts] < min_part / 2) continue;
    cut[++parts] = q;
  }
  cut[++parts] = len;
  if (parts < 2) return encode_range(st, text, 0, len);

  part_job jobs[TOK_SPLIT_MAX_PARTS];
  tok_error errs[TOK_SPLIT_MAX_PARTS];
  for (size_t i = 1; i < parts; i++) {
    part_job *j = &jobs[i];
    *j = (part_job){.opts = *st->opts, .text = text, .from = cut[i], .to = cut[i + 1]};
    j->opts.split = NULL;
    j->st = (encode_state){.enc = st->enc, .s = sp->helpers[i - 1], .opts = &j->opts,
                           .allowed = st->allowed, .keep = st->keep, .err = &errs[i]};
    j->started = pthread_create(&j->thread, NULL, part_main, j) == 0;
  }
  tok_err rc = encode_range(st, text, 0, cut[1]);
  size_t len0 = st->len, total0 = st->total;
  bool redo = false;
  for (size_t i = 1; i < parts; i++) {
    part_job *j = &jobs[i];
    if (j->started) pthread_join(j->thread, NULL);
    if (rc != TOK_OK || redo) continue;
    if (!j->started || j->rc != TOK_OK) {
      redo = true;
      continue;
    }
    if (st->keep) {
      bool offs = st->opts->want_offsets;
      if ((rc = ids_reserve(st->s, st->len, j->st.len, offs, st->err)) != TOK_OK) continue;
      memcpy(st->s->ids + st->len, j->st.s->ids, j->st.len * sizeof *st->s->ids);
      if (offs) memcpy(st->s->offsets + 2 * st->len, j->st.s->offsets, 2 * j->st.len * sizeof *st->s->offsets);
      st->len += j->st.len;
    }
    st->total += j->st.total;
    size_t max = st->s->limits.max_tokens_out;
    if (max && st->total > max) redo = true;
  }
  if (rc != TOK_OK || !redo) return rc;
  /* back to the end of part 0, then on in order */
  st->len = len0;
  st->total = total0;
  return encode_range(st, text, cut[1], len);
}

static tok_err encode_impl(encode_state *st, const char *text_in, size_t text_len)
{
  static const tok_encode_opts defaults = {0};
  const uint8_t *text = (const uint8_t *)text_in;
  const tok_encoding *enc = st->enc;
  if (!st->opts) st->opts = &defaults;
  const tok_encode_opts *opts = st->opts;
  tok_err rc;

  if (text_len > UINT32_MAX - 16)
    return tok__fail(st->err, TOK_ELIMIT, TOK_NO_POS, TOK_NO_POS, "text longer than 4 GiB");
  size_t bad;
  if (!tok_utf8_valid(text_in, text_len, &bad))
    return tok__fail(st->err, TOK_EUTF8, bad, TOK_NO_POS,
                     "invalid UTF-8 at byte offset %zu", bad);

  /* allowed: NULL means every special may match */
  static const tok_special_set none = {0};
  const tok_special_set *allowed = opts->allowed_special;
  if (allowed && allowed->n != enc->info.n_special)
    return tok__fail(st->err, TOK_EINVAL, TOK_NO_POS, TOK_NO_POS,
                     "special-token set belongs to another encoding");
  if (!allowed && !enc->default_all_special) allowed = &none;
  st->allowed = allowed;
  if (opts->check_disallowed && (rc = check_disallowed(enc, allowed, text, text_len, st->err)) != TOK_OK)
    return rc;

  if (opts->add_special_tokens)
    for (size_t k = 0; k < enc->n_post_prefix && !st->stopped; k++)
      if ((rc = push_id(st, enc->post_prefix[k], 0, 0)) != TOK_OK) return rc;

  const tok_split *sp = opts->split;
  bool parallel = sp && sp->n_helpers && enc->splits && !opts->stop_after &&
                  text_len / (sp->min_part ? sp->min_part : TOK_SPLIT_MIN_PART) >= 2;
  rc = parallel                                                              ? encode_parallel(st, text, text_len)
       : opts->prefix_cache && !opts->want_offsets && !opts->stop_after ? encode_cached(st, text, text_len)
                                                                          : encode_range(st, text, 0, text_len);
  if (rc != TOK_OK) return rc;

  if (opts->add_special_tokens)
    for (size_t k = 0; k < enc->n_post_suffix && !st->stopped; k++)
      if ((rc = push_id(st, enc->post_suffix[k], 0, 0)) != TOK_OK) return rc;
  return TOK_OK;
}

tok_err tok_encode(const tok_encoding *enc, tok_scratch *scratch, const char *text,
                   size_t text_len, const tok_encode_opts *opts, tok_encode_result *out,
                   tok_error *err)
{
  encode_state st = {.enc = enc, .s = scratch, .opts = opts, .keep = true, .err = err};
  tok_err rc = encode_impl(&st, text, text_len);
  if (rc != TOK_OK) return rc;
  size_t len = st.len;
  if (st.stopped && len > st.opts->stop_after + 1) len = st.opts->stop_after + 1;
  *out = (tok_encode_result){scratch->ids, st.opts->want_offsets ? scratch->offsets : NULL, len,
                             st.stopped};
  return TOK_OK;
}

bool tok_encoding_splits(const tok_encoding *enc) { return enc->splits; }

tok_err tok_count(const tok_encoding *enc, tok_scratch *scratch, const char *text,
                  size_t text_len, const tok_encode_opts *opts, size_t *count, bool *stopped,
                  tok_error *err)
{
  tok_encode_opts o = opts ? *opts : (tok_encode_opts){0};
  o.want_offsets = false;
  encode_state st = {.enc = enc, .s = scratch, .opts = &o, .keep = false, .err = err};
  tok_err rc = encode_impl(&st, text, text_len);
  if (rc != TOK_OK) return rc;
  size_t total = st.total;
  if (st.stopped && total > o.stop_after + 1) total = o.stop_after + 1;
  *count = total;
  if (stopped) *stopped = st.stopped;
  return TOK_OK;
}

/* ---------------------------------------------------------------------------------------
 * Lookups
 */
bool tok_rank_of(const tok_encoding *enc, const char *bytes, size_t len, uint32_t *rank)
{
  if (len == 0 || len > enc->model->max_len) return false;
  uint32_t r = tok__token_lookup(enc->model, (const uint8_t *)bytes, len);
  if (r == TOK__NONE) return false;
  *rank = r;
  return true;
}
