/*
 * prefix.c — the prefix cache: the ids of a text up to a point where tokenization provably
 * restarts, remembered by the exact bytes before that point, so a chat history that a
 * client sends again with a new turn appended is tokenized only from there on, and a text
 * sent again whole costs a lookup.
 *
 * Where tokenization restarts. The encoder (encode.c, encode_range) first finds the added
 * tokens matched as written (tiktoken's specials; Hugging Face's normalized=false tokens,
 * such as a chat template's turn markers) with a leftmost-longest scan, then encodes each
 * stretch between them on its own: normalization, normalized added tokens, pre-tokenizer
 * and BPE see only the stretch and its offset in the text (the only context any stage
 * takes, e.g. Metaspace's "first" prepend). So the ids of a text are the ids of its first
 * p bytes followed by those of the rest whenever p is the end of a raw match (a
 * "boundary").
 *
 * Why a remembered prefix is exact. Let an entry hold the ids of text A up to a boundary p
 * of A, and let a new text B share A's first p bytes, with p a boundary of B as well (the
 * lookup only tries B's own boundaries, found by the same scan over all of B). The scan's
 * decisions at positions before p look at the longest candidate token there. Since both
 * scans reach a match that ends exactly at p, no decision before it took a candidate
 * reaching past p in A or in B (that match or skip would have crossed p), so every
 * decision before p chose among candidates that end by p — the same bytes in A and B.
 * The one look past a candidate's end, single_word's check of the next character, differs
 * only for a candidate ending exactly at p, and that candidate is the boundary match
 * itself in both texts (had it been skipped in one, no match could end at p there); rstrip
 * stopped at p in both for the same reason. So A and B have the same matches and the same
 * stretches before p, and the encoder restarts at p with the same state. A prefix that
 * ends inside a special token's text, inside a UTF-8 character or inside normalized text
 * is never a boundary of B, so it is never used. An entry also holds the encoding (its
 * serial, never reused by a later registry) and the set of specials that may match (a
 * different set gives other boundaries and ids), both compared whole on every hit, never
 * trusted to a hash; offsets, early stops and multi-threaded splits do not use the cache.
 *
 * Structure. One cache serves every tokenizer of a process within one byte budget. It is
 * split into shards, each with its own lock, hash table and LRU list, so threads working
 * on different texts rarely meet; a lookup locks only the shard of the key it tries and
 * copies the ids out under it. An entry is keyed by a seeded 64-bit hash of its text up to
 * its last boundary (hash equality is only a hint: the bytes are compared), holds the
 * whole text and its ids, and answers a later text that extends it (at that boundary) or
 * repeats it (whole). Texts with no boundary are admitted on their second sight (a
 * doorkeeper of recent keys per shard), so a stream of fresh texts does not churn the
 * cache. An entry larger than a shard's share of the budget is not kept.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h"

#define SHARDS 16
#define DOOR_SLOTS 1024
#define MAX_TRIES 256

typedef struct pc_entry {
  struct pc_entry *next_in_bucket;
  struct pc_entry *lru_prev, *lru_next; /* most recent at the head */
  uint64_t enc_serial; /* the encoding (tok_encoding.serial, never reused) */
  uint64_t key;        /* hash of text[0, bound) with the encoding and the specials' set */
  uint64_t allowed_fp; /* a hash of which specials may match ... */
  uint32_t allowed_words; /* ... and the set itself, compared whole: ALL_SPECIALS or a count
                             of 64-bit words after the ids and the text */
  uint32_t bound;      /* the last boundary (the whole length when exact_only) */
  uint32_t bound_ids;  /* ids of text[0, bound) */
  uint32_t text_len, n_ids;
  bool exact_only;     /* no boundary: answers only the same text */
  size_t size;         /* bytes charged to the budget */
  uint32_t *ids;       /* n_ids, then the text's bytes, then the set's words (one allocation) */
  uint8_t *text;
  uint64_t *allowed;
} pc_entry;

#define ALL_SPECIALS UINT32_MAX /* allowed NULL: every special may match */

typedef struct pc_shard {
  pthread_mutex_t lock;
  pc_entry **bucket;
  size_t mask;
  size_t n, bytes, budget;
  pc_entry lru; /* sentinel */
  uint64_t door[DOOR_SLOTS];
} pc_shard;

struct tok_prefix_cache {
  uint64_t seed;
  pc_shard shard[SHARDS];
  _Atomic uint64_t hits, exact_hits, misses, evictions, bytes_saved, inserts;
};

/* ---------------------------------------------------------------------------------------
 * Hashing: a seeded multiply-rotate over 8-byte words, finished with the length; states at
 * word boundaries let every boundary's prefix hash come from one pass over the text.
 */
static inline uint64_t mix(uint64_t h, uint64_t w)
{
  h ^= w * 0x9E3779B97F4A7C15ull;
  h = (h << 27 | h >> 37) * 0xC2B2AE3D27D4EB4Full;
  return h ^ (h >> 29);
}

static inline uint64_t finish(uint64_t h, const uint8_t *text, size_t from, size_t to)
{
  uint64_t tail = 0;
  memcpy(&tail, text + from, to - from);
  h = mix(h, tail ^ ((uint64_t)(to - from) << 56));
  h = mix(h, (uint64_t)to);
  return h ^ (h >> 32);
}

/* A seeded hash of the set (it spreads keys; the set itself is compared, so a forged
 * collision gains nothing). */
static uint64_t fingerprint_allowed(uint64_t seed, const tok_special_set *allowed)
{
  if (!allowed) return mix(seed, 0x5bd1e995u); /* every special may match */
  uint64_t h = mix(seed, allowed->n);
  for (size_t i = 0; i < (allowed->n + 63) / 64; i++) h = mix(h, allowed->bits[i]);
  return h | 1;
}

static uint32_t allowed_words(const tok_special_set *allowed)
{
  return allowed ? (uint32_t)((allowed->n + 63) / 64) : ALL_SPECIALS;
}

/* e was made with the same encoding and the same set of specials */
static bool same_setting(const pc_entry *e, const tok_encoding *enc, const tok__prefix_job *job)
{
  const tok_special_set *a = job->allowed;
  if (e->enc_serial != enc->serial || e->allowed_fp != job->allowed_fp || e->allowed_words != allowed_words(a))
    return false;
  return !a || !memcmp(e->allowed, a->bits, (size_t)e->allowed_words * sizeof *e->allowed);
}

/* The keys of text[0, pos[i]) for ascending positions pos[0..n). */
static void prefix_keys(uint64_t seed, const tok_encoding *enc, uint64_t allowed_fp, const uint8_t *text,
                        const uint32_t *pos, size_t n, uint64_t *keys)
{
  uint64_t h = mix(seed ^ enc->serial, allowed_fp);
  size_t done = 0; /* bytes folded into h, a multiple of 8 */
  for (size_t i = 0; i < n; i++) {
    for (; done + 8 <= pos[i]; done += 8) h = mix(h, tok__load64(text + done));
    keys[i] = finish(h, text, done, pos[i]);
  }
}

/* ---------------------------------------------------------------------------------------
 * The cache
 */
tok_prefix_cache *tok_prefix_cache_new(size_t budget_bytes)
{
  tok_prefix_cache *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  /* the seed only spreads keys over shards and buckets: the bytes, the encoding and the set
   * of specials are compared on every hit, so a guessed seed costs probes, never a wrong id;
   * a random one keeps clients from aiming their texts at one shard */
  if (getrandom(&c->seed, sizeof c->seed, GRND_NONBLOCK) != (ssize_t)sizeof c->seed) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    c->seed = mix((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32), (uint64_t)getpid() ^ (uint64_t)(uintptr_t)c);
  }
  for (int i = 0; i < SHARDS; i++) {
    pc_shard *sh = &c->shard[i];
    pthread_mutex_init(&sh->lock, NULL);
    sh->budget = budget_bytes / SHARDS;
    sh->lru.lru_prev = sh->lru.lru_next = &sh->lru;
    sh->mask = 255;
    if (!(sh->bucket = calloc(sh->mask + 1, sizeof *sh->bucket))) {
      tok_prefix_cache_free(c);
      return NULL;
    }
  }
  return c;
}

void tok_prefix_cache_free(tok_prefix_cache *c)
{
  if (!c) return;
  for (int i = 0; i < SHARDS; i++) {
    pc_shard *sh = &c->shard[i];
    for (pc_entry *e = sh->lru.lru_next; e && e != &sh->lru;) {
      pc_entry *next = e->lru_next;
      free(e);
      e = next;
    }
    free(sh->bucket);
    pthread_mutex_destroy(&sh->lock);
  }
  free(c);
}

void tok_prefix_cache_read(const tok_prefix_cache *c_const, tok_prefix_cache_stats *out)
{
  tok_prefix_cache *c = (tok_prefix_cache *)c_const;
  *out = (tok_prefix_cache_stats){
      .hits = atomic_load(&c->hits), .exact_hits = atomic_load(&c->exact_hits),
      .misses = atomic_load(&c->misses), .evictions = atomic_load(&c->evictions),
      .bytes_saved = atomic_load(&c->bytes_saved), .inserts = atomic_load(&c->inserts)};
  for (int i = 0; i < SHARDS; i++) {
    pc_shard *sh = &c->shard[i];
    pthread_mutex_lock(&sh->lock);
    out->entries += sh->n;
    out->bytes += sh->bytes;
    out->budget += sh->budget;
    pthread_mutex_unlock(&sh->lock);
  }
}

static inline pc_shard *shard_of(tok_prefix_cache *c, uint64_t key)
{
  return &c->shard[key >> 60 & (SHARDS - 1)];
}

static void lru_unlink(pc_entry *e)
{
  e->lru_prev->lru_next = e->lru_next;
  e->lru_next->lru_prev = e->lru_prev;
}

static void lru_push(pc_shard *sh, pc_entry *e)
{
  e->lru_next = sh->lru.lru_next;
  e->lru_prev = &sh->lru;
  sh->lru.lru_next->lru_prev = e;
  sh->lru.lru_next = e;
}

static void bucket_unlink(pc_shard *sh, pc_entry *e)
{
  pc_entry **p = &sh->bucket[e->key & sh->mask];
  while (*p != e) p = &(*p)->next_in_bucket;
  *p = e->next_in_bucket;
}

/* Doubles the shard's table when it holds more entries than buckets (a failed allocation
 * keeps the old one: longer chains, same answers). */
static void shard_grow(pc_shard *sh)
{
  size_t mask = sh->mask * 2 + 1;
  pc_entry **b = calloc(mask + 1, sizeof *b);
  if (!b) return;
  for (pc_entry *e = sh->lru.lru_next; e != &sh->lru; e = e->lru_next) {
    e->next_in_bucket = b[e->key & mask];
    b[e->key & mask] = e;
  }
  free(sh->bucket);
  sh->bucket = b;
  sh->mask = mask;
}

/* ---------------------------------------------------------------------------------------
 * Lookup and insert (encode.c calls these)
 */
tok_err tok__prefix_plan(const tok_prefix_cache *c, const tok_encoding *enc, const tok_special_set *allowed,
                         tok_scratch *s, const uint8_t *text, size_t len, tok__prefix_job *job, tok_error *err)
{
  *job = (tok__prefix_job){.allowed_fp = fingerprint_allowed(c->seed, allowed), .allowed = allowed};
  size_t n = 0;
  /* the raw matches' ends, as encode_range finds them */
  for (size_t at = 0, a, b; enc->raw_tokens.n_nodes > 1; at = b) {
    long k = tok__added_next(&enc->raw_tokens, enc->added, allowed, text, len, at, at, &a, &b);
    if (k < 0) break;
    if (n == s->pc_cap) {
      size_t cap = s->pc_cap ? 2 * s->pc_cap : 64;
      uint32_t *pos = realloc(s->pc_pos, cap * sizeof *pos);
      if (pos) s->pc_pos = pos;
      uint64_t *keys = pos ? realloc(s->pc_key, cap * sizeof *keys) : NULL;
      if (!keys) return tok__fail(err, TOK_ENOMEM, TOK_NO_POS, TOK_NO_POS, "out of memory");
      s->pc_key = keys;
      s->pc_cap = cap;
    }
    s->pc_pos[n++] = (uint32_t)b;
  }
  job->n_bounds = n;
  job->last_bound = n ? s->pc_pos[n - 1] : (uint32_t)len;
  if (n) prefix_keys(c->seed, enc, job->allowed_fp, text, s->pc_pos, n, s->pc_key);
  job->key = n ? s->pc_key[n - 1] : 0;
  if (!n) {
    uint32_t whole = (uint32_t)len;
    prefix_keys(c->seed, enc, job->allowed_fp, text, &whole, 1, &job->key);
  }
  return TOK_OK;
}

/* Copies e's first n ids to where room(ctx, n) says (no room function: count only);
 * false when room has none (out of memory). */
static bool take(const pc_entry *e, uint32_t n, uint32_t *(*room)(void *ctx, size_t n), void *ctx)
{
  if (!room) return true;
  uint32_t *dst = room(ctx, n);
  if (!dst) return false;
  memcpy(dst, e->ids, (size_t)n * sizeof *dst);
  return true;
}

bool tok__prefix_lookup(const tok_prefix_cache *c_const, const tok_encoding *enc, tok_scratch *s,
                        const uint8_t *text, size_t len, tok__prefix_job *job,
                        uint32_t *(*room)(void *ctx, size_t n), void *ctx)
{
  tok_prefix_cache *c = (tok_prefix_cache *)c_const;
  /* the same text whole */
  pc_shard *sh = shard_of(c, job->key);
  pthread_mutex_lock(&sh->lock);
  for (pc_entry *e = sh->bucket[job->key & sh->mask]; e; e = e->next_in_bucket)
    if (e->key == job->key && same_setting(e, enc, job) && e->text_len == len && e->bound == job->last_bound &&
        !memcmp(e->text, text, len)) {
      if (!take(e, e->n_ids, room, ctx)) break; /* out of memory: encode as if not cached */
      job->hit_bound = (uint32_t)len;
      job->hit_ids = e->n_ids;
      job->exact = true;
      lru_unlink(e);
      lru_push(sh, e);
      pthread_mutex_unlock(&sh->lock);
      atomic_fetch_add(&c->hits, 1);
      atomic_fetch_add(&c->exact_hits, 1);
      atomic_fetch_add(&c->bytes_saved, len);
      return true;
    }
  pthread_mutex_unlock(&sh->lock);
  /* a text that this one extends, at one of this one's boundaries (the longest first).
   * An entry ends at the last boundary of the request that made it, which a resent
   * conversation has among its last few (a turn adds some four): the last MAX_TRIES are
   * tried, so a text of a million special tokens costs a bounded number of probes. */
  size_t stop = job->n_bounds > MAX_TRIES ? job->n_bounds - MAX_TRIES : 0;
  for (size_t i = job->n_bounds; i-- > stop;) {
    uint64_t key = s->pc_key[i];
    uint32_t bound = s->pc_pos[i];
    sh = shard_of(c, key);
    pthread_mutex_lock(&sh->lock);
    for (pc_entry *e = sh->bucket[key & sh->mask]; e; e = e->next_in_bucket)
      if (e->key == key && !e->exact_only && e->bound == bound && same_setting(e, enc, job) &&
          !memcmp(e->text, text, bound)) {
        if (!take(e, e->bound_ids, room, ctx)) break;
        job->hit_bound = bound;
        job->hit_ids = e->bound_ids;
        lru_unlink(e);
        lru_push(sh, e);
        pthread_mutex_unlock(&sh->lock);
        atomic_fetch_add(&c->hits, 1);
        atomic_fetch_add(&c->bytes_saved, bound);
        return true;
      }
    pthread_mutex_unlock(&sh->lock);
  }
  atomic_fetch_add(&c->misses, 1);
  return false;
}

void tok__prefix_insert(const tok_prefix_cache *c_const, const tok_encoding *enc, const uint8_t *text,
                        size_t len, const uint32_t *ids, size_t n_ids, const tok__prefix_job *job)
{
  tok_prefix_cache *c = (tok_prefix_cache *)c_const;
  bool exact_only = job->n_bounds == 0;
  pc_shard *sh = shard_of(c, job->key);
  uint32_t words = allowed_words(job->allowed);
  size_t set_bytes = words == ALL_SPECIALS ? 0 : (size_t)words * sizeof(uint64_t);
  /* the set's words aligned after the ids and the text */
  size_t set_at = (sizeof(pc_entry) + n_ids * sizeof *ids + len + 7) & ~(size_t)7;
  size_t size = set_at + set_bytes;
  if (size > sh->budget || len > UINT32_MAX || n_ids > UINT32_MAX) return;
  if (exact_only) {
    /* the doorkeeper: a text without boundaries is kept on its second sight */
    uint64_t *slot = &sh->door[job->key % DOOR_SLOTS];
    pthread_mutex_lock(&sh->lock);
    bool seen = *slot == job->key;
    *slot = seen ? 0 : job->key;
    pthread_mutex_unlock(&sh->lock);
    if (!seen) return;
  }
  pc_entry *e = malloc(size);
  if (!e) return;
  *e = (pc_entry){.enc_serial = enc->serial, .key = job->key, .allowed_fp = job->allowed_fp,
                  .allowed_words = words, .bound = job->last_bound,
                  .bound_ids = (uint32_t)job->last_bound_ids, .text_len = (uint32_t)len, .n_ids = (uint32_t)n_ids,
                  .exact_only = exact_only, .size = size};
  e->ids = (uint32_t *)(e + 1);
  e->text = (uint8_t *)(e->ids + n_ids);
  e->allowed = (uint64_t *)((uint8_t *)e + set_at);
  memcpy(e->ids, ids, n_ids * sizeof *ids);
  memcpy(e->text, text, len);
  if (set_bytes) memcpy(e->allowed, job->allowed->bits, set_bytes);
  uint64_t evicted = 0;
  pthread_mutex_lock(&sh->lock);
  /* the same text already there (another thread's, or a race): keep that one */
  for (pc_entry *o = sh->bucket[e->key & sh->mask]; o; o = o->next_in_bucket)
    if (o->key == e->key && same_setting(o, enc, job) && o->text_len == len && o->bound == e->bound &&
        !memcmp(o->text, text, len)) {
      pthread_mutex_unlock(&sh->lock);
      free(e);
      return;
    }
  while (sh->bytes + size > sh->budget && sh->lru.lru_prev != &sh->lru) {
    pc_entry *old = sh->lru.lru_prev;
    lru_unlink(old);
    bucket_unlink(sh, old);
    sh->bytes -= old->size;
    sh->n--;
    free(old);
    evicted++;
  }
  e->next_in_bucket = sh->bucket[e->key & sh->mask];
  sh->bucket[e->key & sh->mask] = e;
  lru_push(sh, e);
  sh->bytes += size;
  if (++sh->n > sh->mask + 1) shard_grow(sh);
  pthread_mutex_unlock(&sh->lock);
  atomic_fetch_add(&c->inserts, 1);
  if (evicted) atomic_fetch_add(&c->evictions, evicted);
}
