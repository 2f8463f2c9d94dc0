/*
 * check_prefix.c — the prefix cache (src/core/prefix.c) never changes an id: texts made of
 * special tokens, parts of special tokens, ordinary text in many scripts and white space
 * are encoded whole, through a cache that has seen prefixes of them cut anywhere (inside a
 * special token's text, inside a UTF-8 character's bytes when the cut is moved to the next
 * character, in normalized text), and compared with encoding them without a cache; the
 * cache's memory stays within its budget; threads sharing one cache agree with one thread.
 */
#include <pthread.h>

#include "testutil.h"

/* Text in many scripts, code and emoji: corpus files one after another, repeated to at
 * least 64 KiB (each file is whole UTF-8, so every joint is a character boundary). */
static char *read_corpus(size_t *len)
{
  static const char *const files[] = {"prose_scripts.txt", "prose_multi.txt", "code_c.txt", "emoji.txt",
                                      "prose_en.txt", "code_py.txt"};
  size_t cap = 1 << 17, n = 0;
  char *all = malloc(cap);
  while (n < (1 << 16))
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
      char path[256];
      size_t flen;
      snprintf(path, sizeof path, "data/corpus/%s", files[f]);
      char *t = tu_read_file(path, &flen);
      if (n + flen > cap) all = realloc(all, cap = 2 * (n + flen));
      memcpy(all + n, t, flen);
      n += flen;
      free(t);
    }
  *len = n;
  return all;
}

static uint32_t rnd(uint32_t *x)
{
  *x ^= *x << 13, *x ^= *x >> 17, *x ^= *x << 5;
  return *x;
}

/* n moved back to the start of the character it cuts (n itself when it cuts none) */
static size_t utf8_cut(const char *t, size_t n)
{
  while (n && (t[n] & 0xC0) == 0x80) n--;
  return n;
}

/* A chat-like text for enc in buf: its special tokens (whole and cut short), snippets of
 * the corpus in many scripts, template words and white space. */
static size_t chat_text(const tok_encoding *enc, uint32_t *x, const char *corpus, size_t corpus_len, char *buf,
                        size_t cap)
{
  static const char *const words[] = {"user", "assistant", "\n", "\n\n", " ", "  ", "system", "<think>",
                                      "</think>", "<tool_call>", "\xe2\x96\x81", "<start_of_turn>", "model",
                                      "{\"name\": \"f\"}", "\t", "<|", "|>", "\xc3\xa9", "<s>", "[INST]"};
  const tok_encoding_info *info = tok_encoding_get_info(enc);
  size_t len = 0;
  for (int part = 0; part < 40; part++) {
    uint32_t r = rnd(x);
    const char *p;
    size_t n;
    if (r % 4 == 0 && info->n_special) {
      const tok_special_token *t = &info->special[rnd(x) % info->n_special];
      p = t->text;
      n = t->text_len;
      if (r % 16 == 4 && n > 1) n = utf8_cut(p, 1 + rnd(x) % (n - 1)); /* a special token cut short */
    } else if (r % 4 == 1) {
      p = words[rnd(x) % (sizeof words / sizeof words[0])];
      n = strlen(p);
    } else {
      size_t at = rnd(x) % corpus_len;
      while (at < corpus_len && (corpus[at] & 0xC0) == 0x80) at++;
      n = 1 + rnd(x) % 120;
      if (at + n > corpus_len) n = corpus_len - at;
      while (n && at + n < corpus_len && (corpus[at + n] & 0xC0) == 0x80) n--;
      p = corpus + at;
    }
    if (len + n >= cap) break;
    memcpy(buf + len, p, n);
    len += n;
  }
  return len;
}

static uint32_t *encode_copy(const tok_encoding *enc, tok_scratch *s, const char *text, size_t len,
                             const tok_encode_opts *opts, size_t *n)
{
  tok_encode_result r;
  tok_error err;
  ck_assert_msg(tok_encode(enc, s, text, len, opts, &r, &err) == TOK_OK, "%s", err.detail);
  uint32_t *ids = malloc(r.len * sizeof *ids + 1);
  memcpy(ids, r.ids, r.len * sizeof *ids);
  *n = r.len;
  return ids;
}

static void same_ids(const char *what, const uint32_t *a, size_t na, const uint32_t *b, size_t nb)
{
  size_t i = 0;
  while (i < na && i < nb && a[i] == b[i]) i++;
  ck_assert_msg(na == nb && i == na, "%s: cached ids differ at %zu (%zu vs %zu ids)", what, i, na, nb);
}

/* Encodings under test: the built-ins with every special allowed, the open models. */
static const tok_encoding *encoding_at(int i, bool *all_special)
{
  static const char *const builtin[] = {"cl100k_base", "o200k_base", "r50k_base"};
  *all_special = true;
  if (i < 3) return tu_encoding(builtin[i]);
  return tu_hf_model_or_skip(TU_HF_MODELS[i - 3]);
}
#define N_ENCODINGS (3 + TU_N_HF_MODELS)

/* Protects: through the cache, every text's ids equal its ids without one — after prefixes
 * of it cut at random places were seen, for the text whole again (an exact hit), for
 * counts, and with the post-processor's ids — and the cache is really used (hits). */
START_TEST(test_prefix_cache_exact)
{
  bool all;
  const tok_encoding *enc = encoding_at(_i, &all);
  if (!enc) return;
  size_t corpus_len;
  char *corpus = read_corpus(&corpus_len);
  tok_prefix_cache *cache = tok_prefix_cache_new((size_t)8 << 20);
  tok_scratch *s = tok_scratch_new(NULL);
  tok_special_set set;
  tok_special_set_all(enc, &set);
  tok_encode_opts plain = {.allowed_special = &set}, cached = {.allowed_special = &set, .prefix_cache = cache};
  uint32_t x = 2463534242u + (uint32_t)_i;
  char text[8192];
  for (int iter = 0; iter < 60; iter++) {
    size_t len = chat_text(enc, &x, corpus, corpus_len, text, sizeof text), n_want, n_got;
    uint32_t *want = encode_copy(enc, s, text, len, &plain, &n_want);
    for (int cut = 0; cut < 4; cut++) {
      size_t c = rnd(&x) % (len + 1);
      while (c < len && (text[c] & 0xC0) == 0x80) c++; /* the text must be UTF-8 */
      size_t n_part, n_part_want;
      uint32_t *part = encode_copy(enc, s, text, c, &cached, &n_part);
      uint32_t *part_want = encode_copy(enc, s, text, c, &plain, &n_part_want);
      same_ids("a prefix through the cache", part, n_part, part_want, n_part_want);
      free(part), free(part_want);
    }
    uint32_t *got = encode_copy(enc, s, text, len, &cached, &n_got);
    same_ids("the whole text after its prefixes", got, n_got, want, n_want);
    free(got);
    got = encode_copy(enc, s, text, len, &cached, &n_got);
    same_ids("the same text again", got, n_got, want, n_want);
    free(got);
    size_t count;
    tok_error err;
    ck_assert_int_eq(tok_count(enc, s, text, len, &cached, &count, NULL, &err), TOK_OK);
    ck_assert_uint_eq(count, n_want);
    /* another set of specials over the same text (fewer boundaries, other ids): never the
     * entries made with the first set */
    tok_special_set one;
    tok_special_set_none(enc, &one);
    const tok_encoding_info *info = tok_encoding_get_info(enc);
    if (info->n_special) tok_special_set_add(enc, &one, info->special[0].text, info->special[0].text_len, NULL);
    tok_encode_opts other = {.allowed_special = &one, .prefix_cache = cache}, other_plain = {.allowed_special = &one};
    for (int k = 0; k < 2; k++) {
      size_t n_o, n_ow;
      uint32_t *o = encode_copy(enc, s, text, len, &other, &n_o);
      uint32_t *ow = encode_copy(enc, s, text, len, &other_plain, &n_ow);
      same_ids("another set of specials", o, n_o, ow, n_ow);
      free(o), free(ow);
    }
    /* the post-processor's ids stay outside what is remembered */
    tok_encode_opts post = cached, post_plain = plain;
    post.add_special_tokens = post_plain.add_special_tokens = true;
    size_t n_post, n_post_want;
    uint32_t *p = encode_copy(enc, s, text, len, &post, &n_post);
    uint32_t *pw = encode_copy(enc, s, text, len, &post_plain, &n_post_want);
    same_ids("with the post-processor", p, n_post, pw, n_post_want);
    free(p), free(pw), free(want);
  }
  tok_prefix_cache_stats st;
  tok_prefix_cache_read(cache, &st);
  ck_assert_msg(st.hits >= 60 && st.exact_hits >= 60, "the cache was not used: %llu hits (%llu exact)",
                (unsigned long long)st.hits, (unsigned long long)st.exact_hits);
  ck_assert_msg(st.bytes_saved > 0 && st.bytes <= st.budget, "saved %llu, %zu of %zu bytes",
                (unsigned long long)st.bytes_saved, st.bytes, st.budget);
  /* ordinary text only (no special matched): a text is kept on its second sight */
  tok_encode_opts ordinary = {.prefix_cache = cache}, ordinary_plain = {0};
  if (!all || tok_encoding_get_info(enc)->n_special) {
    size_t n1, n2, n3, cut = utf8_cut(corpus, 3000);
    uint32_t *a = encode_copy(enc, s, corpus, cut, &ordinary, &n1);
    uint32_t *b = encode_copy(enc, s, corpus, cut, &ordinary, &n2);
    tok_prefix_cache_stats before;
    tok_prefix_cache_read(cache, &before);
    uint32_t *c = encode_copy(enc, s, corpus, cut, &ordinary, &n3);
    tok_prefix_cache_read(cache, &st);
    size_t nw;
    uint32_t *w = encode_copy(enc, s, corpus, cut, &ordinary_plain, &nw);
    same_ids("ordinary text, first", a, n1, w, nw);
    same_ids("ordinary text, second", b, n2, w, nw);
    same_ids("ordinary text, third (a hit)", c, n3, w, nw);
    ck_assert_msg(st.exact_hits == before.exact_hits + 1, "a text seen twice is answered whole the third time");
    free(a), free(b), free(c), free(w);
  }
  tok_scratch_free(s);
  tok_prefix_cache_free(cache);
  free(corpus);
}
END_TEST

/* Protects: a conversation sent again and again with a turn appended (what clients do)
 * reuses the previous request's ids each time, and every answer is exact. */
START_TEST(test_prefix_cache_turns)
{
  const tok_encoding *enc = tu_hf_model_or_skip("qwen3");
  if (!enc) return;
  size_t corpus_len;
  char *corpus = read_corpus(&corpus_len);
  tok_prefix_cache *cache = tok_prefix_cache_new((size_t)8 << 20);
  tok_scratch *s = tok_scratch_new(NULL);
  tok_encode_opts plain = {0}, cached = {.prefix_cache = cache};
  static char history[1 << 16];
  size_t len = 0, prev_bound = 0;
  uint32_t x = 88172645u;
  for (int turn = 0; turn < 30; turn++) {
    /* the rendered history so far, a user turn and the generation prompt */
    size_t at = rnd(&x) % (corpus_len - 700), n = 100 + rnd(&x) % 500;
    while ((corpus[at] & 0xC0) == 0x80) at++;
    while ((corpus[at + n] & 0xC0) == 0x80) n++;
    len += (size_t)snprintf(history + len, sizeof history - len, "<|im_start|>user\n%.*s<|im_end|>\n", (int)n,
                            corpus + at);
    size_t with_prompt = len + (size_t)snprintf(history + len, sizeof history - len, "<|im_start|>assistant\n");
    size_t n_got, n_want;
    tok_prefix_cache_stats before, after;
    tok_prefix_cache_read(cache, &before);
    uint32_t *got = encode_copy(enc, s, history, with_prompt, &cached, &n_got);
    tok_prefix_cache_read(cache, &after);
    uint32_t *want = encode_copy(enc, s, history, with_prompt, &plain, &n_want);
    same_ids("turn", got, n_got, want, n_want);
    /* the previous request up to its last special token, "<|im_start|>" of its prompt */
    if (turn) ck_assert_msg(after.hits == before.hits + 1 && after.bytes_saved - before.bytes_saved == prev_bound,
                            "turn %d did not reuse the previous request: %llu bytes, not %zu", turn,
                            (unsigned long long)(after.bytes_saved - before.bytes_saved), prev_bound);
    prev_bound = with_prompt - strlen("assistant\n");
    free(got), free(want);
    /* the answer joins the history */
    len = with_prompt + (size_t)snprintf(history + with_prompt, sizeof history - with_prompt, "%.*s<|im_end|>\n",
                                         (int)utf8_cut(corpus + at, n / 2), corpus + at);
  }
  tok_scratch_free(s);
  tok_prefix_cache_free(cache);
  free(corpus);
}
END_TEST

/* Protects: the budget holds (entries evicted, never more bytes than the budget), and a
 * text larger than a shard's share is simply not kept. */
START_TEST(test_prefix_cache_budget)
{
  const tok_encoding *enc = tu_encoding("cl100k_base");
  size_t corpus_len;
  char *corpus = read_corpus(&corpus_len);
  tok_prefix_cache *cache = tok_prefix_cache_new(256 << 10);
  tok_scratch *s = tok_scratch_new(NULL);
  tok_special_set all;
  tok_special_set_all(enc, &all);
  tok_encode_opts cached = {.prefix_cache = cache, .allowed_special = &all};
  char text[4096];
  uint32_t x = 1u;
  for (int i = 0; i < 400; i++) {
    size_t at = rnd(&x) % (corpus_len - 3000);
    while ((corpus[at] & 0xC0) == 0x80) at++;
    size_t n = (size_t)snprintf(text, sizeof text, "<|endoftext|>%.*s", (int)utf8_cut(corpus + at, 2000), corpus + at);
    size_t ids;
    free(encode_copy(enc, s, text, n, &cached, &ids));
    tok_prefix_cache_stats st;
    tok_prefix_cache_read(cache, &st);
    ck_assert_msg(st.bytes <= st.budget, "%zu bytes in a budget of %zu", st.bytes, st.budget);
  }
  tok_prefix_cache_stats st;
  tok_prefix_cache_read(cache, &st);
  ck_assert_msg(st.evictions > 0 && st.entries > 0, "evictions %llu, entries %zu", (unsigned long long)st.evictions,
                st.entries);
  /* 256 KiB in 16 shards: a text of 40 KB does not fit a shard and is not kept */
  uint64_t inserts = st.inserts;
  size_t big_len = 40000 < corpus_len ? utf8_cut(corpus, 40000) : corpus_len, ids;
  static char big[40100];
  memcpy(big, "<|endoftext|>", 13);
  memcpy(big + 13, corpus, big_len);
  free(encode_copy(enc, s, big, 13 + big_len, &cached, &ids));
  tok_prefix_cache_read(cache, &st);
  ck_assert_uint_eq(st.inserts, inserts);
  tok_scratch_free(s);
  tok_prefix_cache_free(cache);
  free(corpus);
}
END_TEST

typedef struct thread_job {
  const tok_encoding *enc;
  tok_prefix_cache *cache;
  const char *corpus;
  size_t corpus_len;
  uint32_t seed;
  int mismatches;
} thread_job;

static void *thread_main(void *arg)
{
  thread_job *j = arg;
  tok_scratch *s = tok_scratch_new(NULL);
  tok_special_set set;
  tok_special_set_all(j->enc, &set);
  tok_encode_opts plain = {.allowed_special = &set}, cached = {.allowed_special = &set, .prefix_cache = j->cache};
  char text[4096];
  uint32_t x = j->seed;
  for (int i = 0; i < 150; i++) {
    /* few distinct texts, so that threads hit each other's entries */
    uint32_t y = 1 + (uint32_t)(rnd(&x) % 12);
    size_t len = chat_text(j->enc, &y, j->corpus, j->corpus_len, text, sizeof text);
    size_t c = rnd(&x) % (len + 1);
    while (c < len && (text[c] & 0xC0) == 0x80) c++;
    tok_encode_result r;
    tok_error err;
    if (tok_encode(j->enc, s, text, c, &cached, &r, &err) != TOK_OK) j->mismatches++;
    size_t n = r.len;
    uint32_t *ids = malloc(n * sizeof *ids + 1);
    memcpy(ids, r.ids, n * sizeof *ids);
    if (tok_encode(j->enc, s, text, c, &plain, &r, &err) != TOK_OK || r.len != n || memcmp(r.ids, ids, n * 4))
      j->mismatches++;
    free(ids);
  }
  tok_scratch_free(s);
  return NULL;
}

/* Protects: four threads sharing one cache (inserting, evicting and reusing each other's
 * entries) get the ids one thread gets without a cache; TSan checks the locking. */
START_TEST(test_prefix_cache_threads)
{
  const tok_encoding *enc = tu_encoding("cl100k_base");
  size_t corpus_len;
  char *corpus = read_corpus(&corpus_len);
  tok_prefix_cache *cache = tok_prefix_cache_new(1 << 20);
  thread_job jobs[4];
  pthread_t t[4];
  for (int i = 0; i < 4; i++) {
    jobs[i] = (thread_job){enc, cache, corpus, corpus_len, 77u + (uint32_t)i, 0};
    ck_assert_int_eq(pthread_create(&t[i], NULL, thread_main, &jobs[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(t[i], NULL);
    ck_assert_int_eq(jobs[i].mismatches, 0);
  }
  tok_prefix_cache_stats st;
  tok_prefix_cache_read(cache, &st);
  ck_assert_msg(st.hits > 0, "no hits between threads");
  tok_prefix_cache_free(cache);
  free(corpus);
}
END_TEST

#define PREFIX_TESTS(T, L) L(test_prefix_cache_exact, N_ENCODINGS) T(test_prefix_cache_turns) \
  T(test_prefix_cache_budget) T(test_prefix_cache_threads)
TU_SUITE(prefix, "cache", 300, PREFIX_TESTS)
