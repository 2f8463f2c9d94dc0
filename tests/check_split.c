/* check_split.c — one text on several threads (tok_split): the parts joined must be the
 * one-thread result, ids, offsets, counts and errors alike, for every encoding that
 * splits; and every cut point tok__split_point finds must be a place where encoding the
 * two sides apart gives the whole's result. */
#include "core/internal.h"
#include "testutil.h"

#define N_ENCODINGS (5 + TU_N_HF_MODELS)

/* The encoding of loop index i (built-in first, then the open models), or NULL when a
 * model is not fetched. */
static const tok_encoding *encoding_at(int i, const char **name)
{
  *name = i < 5 ? TU_ENCODINGS[i] : TU_HF_MODELS[i - 5];
  return i < 5 ? tu_encoding(*name) : tu_hf_model_or_skip(*name);
}

/* Pieces of text that meet at a cut: letters of several scripts and cases (Lt, Lm, Lo),
 * combining marks, characters normalization changes (U+212B, U+0958 decomposes, jamo
 * compose, e + U+0301), CJK, digits, contractions, white space of all kinds, punctuation,
 * emoji, and the specials' texts. */
static const char *const ATOMS[] = {
    "a", "b", "Z", "word", "The", " ", " ", " ", "  ", "\t", "\n", "\r\n", " \n", "'s", "'LL",
    "\xc3\xa9",          /* é */
    "e\xcc\x81",         /* e + combining acute */
    "\xcc\x81",          /* combining acute alone */
    "\xe2\x84\xab",      /* U+212B ANGSTROM SIGN */
    "\xe0\xa5\x98",      /* U+0958, NFC decomposes it */
    "\xe1\x84\x80\xe1\x85\xa1", /* jamo that compose */
    "\xed\x95\x9c",      /* 한 */
    "\xe4\xb8\xad\xe6\x96\x87", /* 中文 */
    "\xe3\x81\x82",      /* あ */
    "\xd0\x9f\xd1\x80\xd0\xb8", /* При */
    "\xc7\x85",          /* ǅ (Lt) */
    "\xca\xb0",          /* ʰ (Lm) */
    "\xd8\xb9\xd8\xb1",  /* Arabic */
    "\xef\xac\x81",      /* ﬁ (NFKC: fi) */
    "1", "2024", "\xd9\xa3", ".", ",", "!?", "(", "_", "/", "\xf0\x9f\x98\x80", "<|endoftext|>",
    "<|im_start|>", "<s>", "\xe2\x96\x81",
};
#define N_ATOMS (sizeof ATOMS / sizeof ATOMS[0])

static char *random_text(uint64_t seed, size_t want, size_t *len)
{
  char *t = malloc(want + 64);
  size_t n = 0;
  while (n < want) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    const char *a = ATOMS[(seed >> 33) % N_ATOMS];
    /* letters and spaces most often, so that cuts are plentiful */
    if ((seed >> 20) % 3 == 0) a = (seed >> 40) % 2 ? " " : "word";
    size_t k = strlen(a);
    memcpy(t + n, a, k);
    n += k;
  }
  *len = n;
  return t;
}

typedef struct result {
  tok_err rc;
  uint32_t *ids, *offsets;
  size_t len;
  char detail[sizeof ((tok_error *)0)->detail];
} result;

static result run(const tok_encoding *enc, tok_scratch *s, const char *text, size_t len,
                  const tok_encode_opts *opts)
{
  result r = {0};
  tok_encode_result out;
  tok_error err;
  r.rc = tok_encode(enc, s, text, len, opts, &out, &err);
  if (r.rc != TOK_OK) {
    snprintf(r.detail, sizeof r.detail, "%s", err.detail);
    return r;
  }
  r.len = out.len;
  r.ids = malloc((out.len + 1) * sizeof *r.ids);
  memcpy(r.ids, out.ids, out.len * sizeof *r.ids);
  if (out.offsets) {
    r.offsets = malloc((2 * out.len + 1) * sizeof *r.offsets);
    memcpy(r.offsets, out.offsets, 2 * out.len * sizeof *r.offsets);
  }
  return r;
}

static void same(const char *what, const result *a, const result *b)
{
  ck_assert_msg(a->rc == b->rc, "%s: rc %d vs %d", what, a->rc, b->rc);
  ck_assert_msg(!strcmp(a->detail, b->detail), "%s: \"%s\" vs \"%s\"", what, a->detail, b->detail);
  ck_assert_msg(a->len == b->len, "%s: %zu vs %zu ids", what, a->len, b->len);
  for (size_t i = 0; i < a->len; i++)
    ck_assert_msg(a->ids[i] == b->ids[i], "%s: id %zu: %u vs %u", what, i, a->ids[i], b->ids[i]);
  ck_assert(!a->offsets == !b->offsets);
  if (a->offsets)
    ck_assert_msg(!memcmp(a->offsets, b->offsets, 2 * a->len * sizeof *a->offsets), "%s: offsets", what);
}

static void drop(result *r) { free(r->ids), free(r->offsets); }

/* Protects: every cut point is a true break. For each q tok__split_point finds in a
 * random text, encoding text[0..q) and text[q..) apart and joining them gives the ids
 * and offsets of the whole (specials allowed, so they are matched too). */
START_TEST(test_split_points)
{
  const char *name;
  const tok_encoding *enc = encoding_at(_i, &name);
  if (!enc || !tok_encoding_splits(enc)) return;
  tok_scratch *s = tok_scratch_new(NULL);
  tok_special_set all;
  tok_special_set_all(enc, &all);
  tok_encode_opts opts = {.allowed_special = &all, .want_offsets = true};
  size_t len, cuts = 0;
  char *text = random_text(1000 + (uint64_t)_i, 12000, &len);
  result whole = run(enc, s, text, len, &opts);
  ck_assert_int_eq(whole.rc, TOK_OK);
  for (size_t q = 0; (q = tok__split_point(enc, (const uint8_t *)text, len, q + 1, len)) < len;) {
    result left = run(enc, s, text, q, &opts), right = run(enc, s, text + q, len - q, &opts);
    ck_assert(left.rc == TOK_OK && right.rc == TOK_OK);
    ck_assert_msg(left.len + right.len == whole.len, "%s: cut at %zu: %zu + %zu ids, whole %zu", name, q,
                  left.len, right.len, whole.len);
    for (size_t i = 0; i < whole.len; i++) {
      bool l = i < left.len;
      uint32_t id = l ? left.ids[i] : right.ids[i - left.len];
      uint32_t a = l ? left.offsets[2 * i] : right.offsets[2 * (i - left.len)] + (uint32_t)q;
      ck_assert_msg(id == whole.ids[i] && a == whole.offsets[2 * i], "%s: cut at %zu: token %zu differs",
                    name, q, i);
    }
    drop(&left), drop(&right);
    cuts++;
  }
  ck_assert_msg(cuts > 80, "%s: only %zu cut points in a text of %zu bytes", name, cuts, len);
  drop(&whole);
  free(text);
  tok_scratch_free(s);
}
END_TEST

/* Protects: the threaded encode equals the one-thread encode (ids, offsets, counts) on the
 * corpus and on random text, and really ran on the helpers. Encodings that do not split
 * (normalizers that rewrite, SentencePiece models) give the same result on one thread. */
START_TEST(test_split_threads)
{
  const char *name;
  const tok_encoding *enc = encoding_at(_i, &name);
  if (!enc) return;
  const char *files[] = {"data/corpus/prose_en.txt", "data/corpus/prose_multi.txt",
                         "data/corpus/prose_scripts.txt", "data/corpus/code_c.txt",
                         "data/corpus/cjk.txt", "data/corpus/gen_special.txt"};
  size_t len = 0, cap = 0;
  char *text = NULL;
  for (int round = 0; round < 3; round++)
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
      size_t n;
      char *t = tu_read_file(files[f], &n);
      if (len + n > cap) text = realloc(text, cap = 2 * (len + n));
      memcpy(text + len, t, n);
      len += n;
      free(t);
    }
  size_t rlen;
  char *r = random_text(7 + (uint64_t)_i, 40000, &rlen);
  text = realloc(text, len + rlen);
  memcpy(text + len, r, rlen);
  len += rlen;
  free(r);

  tok_scratch *s = tok_scratch_new(NULL), *helpers[3];
  for (int i = 0; i < 3; i++) helpers[i] = tok_scratch_new(NULL);
  tok_split split = {.helpers = helpers, .n_helpers = 3, .min_part = 4096};
  tok_special_set all;
  tok_special_set_all(enc, &all);
  for (int variant = 0; variant < 3; variant++) {
    tok_encode_opts one = {.want_offsets = variant != 1, .add_special_tokens = variant == 2,
                           .allowed_special = variant == 2 ? &all : NULL};
    tok_encode_opts many = one;
    many.split = &split;
    for (int i = 0; i < 3; i++) tok_scratch_stats_reset(helpers[i]);
    result a = run(enc, s, text, len, &one), b = run(enc, s, text, len, &many);
    ck_assert_int_eq(a.rc, TOK_OK);
    same(name, &a, &b);
    if (tok_encoding_splits(enc))
      for (int i = 0; i < 3; i++)
        ck_assert_msg(tok_scratch_stats(helpers[i]).pieces > 0, "%s: helper %d had no part", name, i);
    size_t n1, n2;
    ck_assert_int_eq(tok_count(enc, s, text, len, &one, &n1, NULL, NULL), TOK_OK);
    ck_assert_int_eq(tok_count(enc, s, text, len, &many, &n2, NULL, NULL), TOK_OK);
    ck_assert_uint_eq(n1, a.len);
    ck_assert_uint_eq(n2, a.len);
    drop(&a), drop(&b);
  }
  for (int i = 0; i < 3; i++) tok_scratch_free(helpers[i]);
  tok_scratch_free(s);
  free(text);
}
END_TEST

/* Protects: a limit reached in a later part gives the one-thread error, position and all
 * (the parts after the first are redone in order); stop_after ignores the split. */
START_TEST(test_split_limits)
{
  const tok_encoding *enc = tu_encoding("cl100k_base");
  size_t len;
  char *text = tu_read_file("data/corpus/prose_en.txt", &len);
  tok_encode_result r;
  tok_scratch *probe = tok_scratch_new(NULL);
  ck_assert_int_eq(tok_encode(enc, probe, text, len, NULL, &r, NULL), TOK_OK);
  size_t total = r.len;
  tok_limits lim = {.max_tokens_out = total - total / 5}; /* reached in the last part */
  tok_scratch *s = tok_scratch_new(&lim), *helpers[2] = {tok_scratch_new(&lim), tok_scratch_new(&lim)};
  tok_split split = {.helpers = helpers, .n_helpers = 2, .min_part = 1024};
  tok_encode_opts one = {0}, many = {.split = &split};
  result a = run(enc, s, text, len, &one), b = run(enc, s, text, len, &many);
  ck_assert_int_eq(a.rc, TOK_ELIMIT);
  same("limit", &a, &b);
  drop(&a), drop(&b);

  tok_encode_opts stop1 = {.stop_after = total / 2}, stop2 = {.stop_after = total / 2, .split = &split};
  a = run(enc, probe, text, len, &stop1), b = run(enc, probe, text, len, &stop2);
  same("stop_after", &a, &b);
  drop(&a), drop(&b);
  for (int i = 0; i < 2; i++) tok_scratch_free(helpers[i]);
  tok_scratch_free(s);
  tok_scratch_free(probe);
  free(text);
}
END_TEST

/* Protects: which encodings split. Those whose stages all start afresh at a space between
 * letters do; SentencePiece-style and rewriting normalizers do not. */
START_TEST(test_split_which)
{
  ck_assert(tok_encoding_splits(tu_encoding("cl100k_base")));
  ck_assert(tok_encoding_splits(tu_encoding("o200k_base")));
  ck_assert(tok_encoding_splits(tu_encoding("r50k_base")));
  const char *yes[] = {"llama3_1", "qwen3", "deepseek_v3", "gptoss"}, *no[] = {"gemma3", "llama2", "tiny/sp"};
  for (size_t i = 0; i < 4; i++) {
    const tok_encoding *e = tu_hf_model_or_skip(yes[i]);
    if (e) ck_assert_msg(tok_encoding_splits(e), "%s should split", yes[i]);
  }
  for (size_t i = 0; i < 3; i++) {
    const tok_encoding *e = tu_hf_model_or_skip(no[i]);
    if (e) ck_assert_msg(!tok_encoding_splits(e), "%s should not split", no[i]);
  }
}
END_TEST

#define SPLIT_TESTS(T, L) L(test_split_points, N_ENCODINGS) L(test_split_threads, N_ENCODINGS) \
  T(test_split_limits) T(test_split_which)
TU_SUITE(split, "split", 300, SPLIT_TESTS)
