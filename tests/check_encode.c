/* check_encode.c — encode/count/decode contracts: specials, limits, offsets, errors,
 * threads. */
#include <pthread.h>

#include "core/internal.h"
#include "testutil.h"

static tok_scratch *scratch;
static void setup(void) { scratch = tok_scratch_new(NULL); }
static void teardown(void) { tok_scratch_free(scratch); }

/* Protects: special-token text is ordinary by default and becomes ids only when allowed. */
START_TEST(test_special_tokens)
{
  const tok_encoding *enc = tu_encoding("cl100k_base");
  const char *text = "a<|endoftext|>b<|fim_prefix|>";
  tok_encode_result r;
  tok_error err;
  ck_assert_int_eq(tok_encode(enc, scratch, text, strlen(text), NULL, &r, &err), TOK_OK);
  for (size_t i = 0; i < r.len; i++) ck_assert_uint_lt(r.ids[i], 100256);

  tok_special_set set;
  ck_assert_int_eq(tok_special_set_parse(enc, "<|endoftext|>", 13, &set, &err), TOK_OK);
  tok_encode_opts opts = {.allowed_special = &set};
  ck_assert_int_eq(tok_encode(enc, scratch, text, strlen(text), &opts, &r, &err), TOK_OK);
  ck_assert_uint_eq(r.ids[1], 100257);
  bool fim_ordinary = true;
  for (size_t i = 2; i < r.len; i++) fim_ordinary &= r.ids[i] < 100256;
  ck_assert(fim_ordinary);

  opts.check_disallowed = true;
  ck_assert_int_eq(tok_encode(enc, scratch, text, strlen(text), &opts, &r, &err),
                   TOK_EDISALLOWED_SPECIAL);
  ck_assert_uint_eq(err.pos, 15);
  ck_assert(strstr(err.detail, "<|fim_prefix|>") != NULL);

  ck_assert_int_eq(tok_special_set_parse(enc, "<|endoftext|>,<|nope|>", 22, &set, &err),
                   TOK_EUNKNOWN_SPECIAL);
  ck_assert(strstr(err.detail, "<|nope|>") != NULL);
}
END_TEST

/* Protects: invalid UTF-8 is an error with the byte offset, never a wrong answer. */
START_TEST(test_invalid_utf8)
{
  const tok_encoding *enc = tu_encoding("o200k_base");
  tok_encode_result r;
  tok_error err;
  ck_assert_int_eq(tok_encode(enc, scratch, "hello \xff world", 13, NULL, &r, &err), TOK_EUTF8);
  ck_assert_uint_eq(err.pos, 6);
  size_t n;
  ck_assert_int_eq(tok_count(enc, scratch, "\xed\xa0\x80", 3, NULL, &n, NULL, &err), TOK_EUTF8);
  ck_assert_uint_eq(err.pos, 0);
}
END_TEST

/* Protects: decoding an unused or out-of-range id names the id and its index. */
START_TEST(test_decode_unknown)
{
  const tok_encoding *enc = tu_encoding("cl100k_base");
  tok_buf out = {0};
  tok_error err;
  uint32_t ids[] = {15339, 100256};
  ck_assert_int_eq(tok_decode_bytes(enc, scratch, ids, 2, NULL, &out, &err), TOK_EUNKNOWN_TOKEN);
  ck_assert_uint_eq(err.index, 1);
  ck_assert(strstr(err.detail, "100256") != NULL);
  ck_assert_uint_eq(out.len, 0); /* nothing half-written */
  uint32_t unused[] = {100261, 100275, 100277, UINT32_MAX};
  for (int i = 0; i < 4; i++)
    ck_assert_int_eq(tok_decode_bytes(enc, scratch, unused + i, 1, NULL, &out, &err), TOK_EUNKNOWN_TOKEN);
  uint32_t good[] = {100257, 100276};
  ck_assert_int_eq(tok_decode_bytes(enc, scratch, good, 2, NULL, &out, &err), TOK_OK);
  ck_assert_uint_eq(out.len, 13 + 15);
  /* p50k: 50256 is a gap among ranks, filled by <|endoftext|> */
  out.len = 0;
  uint32_t eot = 50256;
  ck_assert_int_eq(tok_decode_bytes(tu_encoding("p50k_base"), scratch, &eot, 1, NULL, &out, &err), TOK_OK);
  ck_assert(out.len == 13 && memcmp(out.data, "<|endoftext|>", 13) == 0);
  /* the output cap is honoured */
  tok_buf small = {.limit = 4};
  ck_assert_int_eq(tok_decode_bytes(enc, scratch, good, 2, NULL, &small, &err), TOK_ELIMIT);
  tok_buf_free(&small);
  tok_buf_free(&out);
}
END_TEST

/* Protects: stop_after stops early and says so; counts agree with encode. */
START_TEST(test_stop_after_and_count)
{
  const tok_encoding *enc = tu_encoding("cl100k_base");
  size_t len;
  char *text = tu_read_file("data/corpus/prose_en.txt", &len);
  tok_encode_result r;
  tok_error err;
  ck_assert_int_eq(tok_encode(enc, scratch, text, len, NULL, &r, &err), TOK_OK);
  size_t full = r.len, n;
  bool stopped;
  ck_assert_int_eq(tok_count(enc, scratch, text, len, NULL, &n, &stopped, &err), TOK_OK);
  ck_assert_uint_eq(n, full);
  ck_assert(!stopped);
  tok_encode_opts opts = {.stop_after = 10};
  ck_assert_int_eq(tok_count(enc, scratch, text, len, &opts, &n, &stopped, &err), TOK_OK);
  ck_assert(stopped);
  ck_assert_uint_eq(n, 11);
  opts.stop_after = full; /* exactly fits */
  ck_assert_int_eq(tok_count(enc, scratch, text, len, &opts, &n, &stopped, &err), TOK_OK);
  ck_assert(!stopped);
  ck_assert_uint_eq(n, full);
  free(text);
}
END_TEST

/* Protects: offsets point at each token's bytes, so slicing text by offsets gives the
 * decoded tokens. */
START_TEST(test_offsets)
{
  const char *files[] = {"data/corpus/prose_multi.txt", "data/corpus/emoji.txt",
                         "data/corpus/gen_special.txt"};
  for (int f = 0; f < 3; f++) {
    const tok_encoding *enc = tu_encoding("o200k_base");
    size_t len;
    char *text = tu_read_file(files[f], &len);
    tok_special_set all;
    tok_special_set_all(enc, &all);
    tok_encode_opts opts = {.want_offsets = true, .allowed_special = &all};
    tok_encode_result r;
    tok_error err;
    ck_assert_int_eq(tok_encode(enc, scratch, text, len, &opts, &r, &err), TOK_OK);
    ck_assert_ptr_nonnull(r.offsets);
    size_t at = 0;
    for (size_t i = 0; i < r.len; i++) {
      size_t tl;
      const char *tb = tok_token_bytes(enc, r.ids[i], &tl);
      ck_assert_uint_eq(r.offsets[2 * i], at);
      ck_assert_uint_eq(r.offsets[2 * i + 1], at + tl);
      ck_assert(memcmp(text + at, tb, tl) == 0);
      at += tl;
    }
    ck_assert_uint_eq(at, len);
    free(text);
  }
}
END_TEST

/* Protects: the output limit turns a huge result into TOK_ELIMIT, not an allocation. */
START_TEST(test_token_limit)
{
  tok_limits lim = {.max_tokens_out = 5};
  tok_scratch *s = tok_scratch_new(&lim);
  tok_encode_result r;
  tok_error err;
  const char *text = "one two three four five six seven";
  ck_assert_int_eq(tok_encode(tu_encoding("cl100k_base"), s, text, strlen(text), NULL, &r, &err),
                   TOK_ELIMIT);
  tok_scratch_free(s);
}
END_TEST

/* Protects: trimming after a huge input frees the scratch and it still works afterwards. */
START_TEST(test_scratch_trim)
{
  size_t n = 3000000;
  char *text = malloc(n);
  for (size_t i = 0; i < n; i++) text[i] = (char)('a' + i % 26);
  const tok_encoding *enc = tu_encoding("cl100k_base");
  tok_encode_result r;
  ck_assert_int_eq(tok_encode(enc, scratch, text, n, NULL, &r, NULL), TOK_OK);
  size_t big = r.len;
  tok_scratch_trim(scratch, 1 << 20);
  ck_assert_int_eq(tok_encode(enc, scratch, "hello world", 11, NULL, &r, NULL), TOK_OK);
  ck_assert(r.len == 2 && r.ids[0] == 15339 && r.ids[1] == 1917);
  ck_assert_int_eq(tok_encode(enc, scratch, text, n, NULL, &r, NULL), TOK_OK);
  ck_assert_uint_eq(r.len, big);
  free(text);
}
END_TEST

/* Protects: one scratch encoding with several vocabularies in turn gives each the ids and
 * offsets a fresh scratch gives: the piece cache's entries are the model's, never another's
 * (the text's short pieces are tokens of every vocabulary, with different ids, and its rare
 * words split into two to four tokens, some longer than 8 bytes), and a cached encoding of
 * several ids is not used where offsets are asked for. */
START_TEST(test_piece_cache_models)
{
  static const char *const names[] = {"cl100k_base", "o200k_base", "r50k_base", "cl100k_base", "p50k_base"};
  enum { N = sizeof names / sizeof names[0] };
  const char *text = "The cat sat on the mat, and the dog ran off. Then it rained: 1, 22, 333! "
                     "Zyxwvq qwertyuiopz xylophonists' zqxjkv tokenizerish blorptastic >>=--- "
                     "The cat sat on the mat, and the dog ran off. Zyxwvq qwertyuiopz xylophonists'\n";
  size_t len = strlen(text);
  tok_encode_opts with_offsets = {.want_offsets = true};
  uint32_t *want[N], *want_offs[N];
  size_t want_len[N], multi = 0;
  for (size_t i = 0; i < N; i++) {
    tok_scratch *fresh = tok_scratch_new(NULL);
    tok_encode_result r;
    ck_assert_int_eq(tok_encode(tu_encoding(names[i]), fresh, text, len, &with_offsets, &r, NULL), TOK_OK);
    want[i] = malloc(r.len * sizeof *want[i]);
    want_offs[i] = malloc(2 * r.len * sizeof *want_offs[i]);
    memcpy(want[i], r.ids, r.len * sizeof *want[i]);
    memcpy(want_offs[i], r.offsets, 2 * r.len * sizeof *want_offs[i]);
    want_len[i] = r.len;
    for (size_t j = 1; j < r.len; j++) multi += r.offsets[2 * j] == r.offsets[2 * j - 1] && text[r.offsets[2 * j]] != ' ';
    tok_scratch_free(fresh);
  }
  ck_assert(want_len[0] != want_len[1] || memcmp(want[0], want[1], want_len[0] * sizeof *want[0]) != 0);
  ck_assert_uint_gt(multi, 10); /* words of several tokens */
  for (int round = 0; round < 3; round++)
    for (size_t i = 0; i < N; i++) {
      tok_encode_result r;
      ck_assert_int_eq(tok_encode(tu_encoding(names[i]), scratch, text, len, NULL, &r, NULL), TOK_OK);
      ck_assert_msg(r.len == want_len[i] && memcmp(r.ids, want[i], r.len * sizeof *r.ids) == 0, "%s, round %d",
                    names[i], round);
      ck_assert_int_eq(tok_encode(tu_encoding(names[i]), scratch, text, len, &with_offsets, &r, NULL), TOK_OK);
      ck_assert_msg(r.len == want_len[i] && memcmp(r.ids, want[i], r.len * sizeof *r.ids) == 0 &&
                        memcmp(r.offsets, want_offs[i], 2 * r.len * sizeof *r.offsets) == 0,
                    "%s with offsets, round %d", names[i], round);
    }
  for (size_t i = 0; i < N; i++) free(want[i]), free(want_offs[i]);
}
END_TEST

/* Protects: pieces that differ only after their eighth byte, 17,576 of them in a cache of
 * 8,192 entries (so they share entries), encode as on the path without the cache (PCRE2's
 * pieces, one call per piece), with and without offsets. */
START_TEST(test_piece_cache_long_pieces)
{
  size_t n = 26 * 26 * 26, len = 0;
  char *text = malloc(n * 11 + 1);
  for (size_t i = 0; i < n; i++) {
    memcpy(text + len, " abcdefg", 8);
    text[len + 8] = (char)('a' + i / 676), text[len + 9] = (char)('a' + i / 26 % 26), text[len + 10] = (char)('a' + i % 26);
    len += 11;
  }
  tok_scratch *plain = tok_scratch_new(NULL);
  plain->regex_only = true;
  static const char *const names[] = {"cl100k_base", "o200k_base"};
  for (size_t k = 0; k < 2; k++)
    for (int with = 0; with < 2; with++) {
      tok_encode_opts opts = {.want_offsets = with};
      tok_encode_result r, want;
      ck_assert_int_eq(tok_encode(tu_encoding(names[k]), plain, text, len, &opts, &want, NULL), TOK_OK);
      for (int round = 0; round < 2; round++) {
        ck_assert_int_eq(tok_encode(tu_encoding(names[k]), scratch, text, len, &opts, &r, NULL), TOK_OK);
        ck_assert_uint_eq(r.len, want.len);
        ck_assert(memcmp(r.ids, want.ids, r.len * sizeof *r.ids) == 0);
        if (with) ck_assert(memcmp(r.offsets, want.offsets, 2 * r.len * sizeof *r.offsets) == 0);
      }
    }
  tok_scratch_free(plain);
  free(text);
}
END_TEST

/* Protects: a regex resource limit becomes an error return (a 422 in the server), never a
 * crash or a silently shortened result. (cl100k's pattern has a scanner; the test makes it
 * run on PCRE2, as a pattern without one would.) */
START_TEST(test_regex_limit)
{
  tok_limits lim = {.match_limit = 1};
  tok_scratch *s = tok_scratch_new(&lim);
  s->regex_only = true;
  tok_encode_result r;
  tok_error err;
  const char *text = "hello world, a few pieces of text";
  tok_err rc = tok_encode(tu_encoding("cl100k_base"), s, text, strlen(text), NULL, &r, &err);
  ck_assert_int_eq(rc, TOK_EREGEX);
  ck_assert(strstr(err.detail, "pre-tokenizer") != NULL);
  tok_scratch_free(s);
}
END_TEST

typedef struct worker {
  const tok_encoding *enc;
  const char *text;
  size_t len;
  const uint32_t *want;
  size_t want_len;
  int mismatches;
} worker;

static void *encode_worker(void *arg)
{
  worker *w = arg;
  tok_scratch *s = tok_scratch_new(NULL);
  for (int round = 0; round < 20; round++) {
    tok_encode_result r;
    if (tok_encode(w->enc, s, w->text, w->len, NULL, &r, NULL) != TOK_OK || r.len != w->want_len ||
        memcmp(r.ids, w->want, r.len * sizeof *r.ids) != 0)
      w->mismatches++;
  }
  tok_scratch_free(s);
  return NULL;
}

/* Protects: many threads share the loaded encodings without locks and get identical
 * results (run under TSan by `make SANITIZER=thread test`). */
START_TEST(test_threads)
{
  enum { N = 8 };
  const char *files[] = {"data/corpus/prose_multi.txt", "data/corpus/code_c.txt",
                         "data/corpus/cjk.txt", "data/corpus/gen_run_a.txt"};
  worker w[N];
  pthread_t t[N];
  char *texts[4];
  uint32_t *want[4];
  size_t lens[4], want_len[4];
  const tok_encoding *enc = tu_encoding("o200k_base");
  for (int f = 0; f < 4; f++) {
    texts[f] = tu_read_file(files[f], &lens[f]);
    tok_encode_result r;
    ck_assert_int_eq(tok_encode(enc, scratch, texts[f], lens[f], NULL, &r, NULL), TOK_OK);
    want[f] = malloc(r.len * sizeof *r.ids);
    memcpy(want[f], r.ids, r.len * sizeof *r.ids);
    want_len[f] = r.len;
  }
  for (int i = 0; i < N; i++) {
    w[i] = (worker){enc, texts[i % 4], lens[i % 4], want[i % 4], want_len[i % 4], 0};
    ck_assert_int_eq(pthread_create(&t[i], NULL, encode_worker, &w[i]), 0);
  }
  for (int i = 0; i < N; i++) {
    pthread_join(t[i], NULL);
    ck_assert_int_eq(w[i].mismatches, 0);
  }
  for (int f = 0; f < 4; f++) free(texts[f]), free(want[f]);
}
END_TEST

Suite *encode_suite(void)
{
  TCase *tc;
  Suite *s = tu_suite("encode", "core", 120, &tc);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_special_tokens);
  tcase_add_test(tc, test_invalid_utf8);
  tcase_add_test(tc, test_decode_unknown);
  tcase_add_test(tc, test_stop_after_and_count);
  tcase_add_test(tc, test_offsets);
  tcase_add_test(tc, test_token_limit);
  tcase_add_test(tc, test_regex_limit);
  tcase_add_test(tc, test_scratch_trim);
  tcase_add_test(tc, test_piece_cache_models);
  tcase_add_test(tc, test_piece_cache_long_pieces);
  tcase_add_test(tc, test_threads);
  return s;
}
