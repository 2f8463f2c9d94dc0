/*
 * internal.h — structures shared by the modules of libtok (never installed).
 *
 * Ownership: a tok_registry owns its encodings and the rank files (tok__vocab) they
 * point at; several encodings may share one tok__vocab (p50k_base and p50k_edit). After
 * loading nothing here is written again, which is what lets every thread read it without
 * locks.
 */
#ifndef TOK_INTERNAL_H
#define TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tok.h"
#include "phash.h"

#define TOK__NO_RANK UINT32_MAX

/* One rank file: token bytes <-> rank. */
typedef struct tok__vocab {
  char *file;          /* file name as given in the manifest */
  char sha256[65];     /* hex */
  uint32_t n_ranks;    /* tokens present */
  uint32_t rank_end;   /* highest rank + 1 (ranks may have gaps) */
  uint32_t *off;       /* rank_end + 1 offsets: rank r is bytes[off[r] .. off[r+1]) */
  uint8_t *bytes;      /* all token bytes in rank order */
  uint32_t byte_rank[256]; /* rank of each single byte, TOK__NO_RANK if none */
  uint32_t *pair_rank;     /* 65,536 entries: rank of each two-byte token (first byte high),
                              TOK__NO_RANK if none; every merge loop starts with these */
  tok__phash index;    /* token bytes -> TOK__ENTRY(rank, offset, length) */
} tok__vocab;

/* vocab.c: rank files and manifests (the format is described above tok__manifest_parse). */
typedef struct tok__manifest {
  char *name;
  char **aliases; /* NULL-terminated, never NULL after a successful parse */
  char *ranks;
  char sha256[65]; /* "" when the manifest gives none */
  uint32_t n_vocab; /* 0 when the manifest gives none */
  char *pattern;
  tok_special_token *special; /* texts are owned */
  size_t n_special;
} tok__manifest;
struct tok_encoding {
  tok_encoding_info info; /* points into manifest and vocab */
  tok__manifest manifest;
  const tok__vocab *vocab;
  uint8_t special_first[256]; /* 1 for bytes that start some special token */
  int special_first_byte;     /* the only such byte, or -1 when there are several */
  pcre2_code *re;
  bool re_jit;
};

struct tok_registry {
  tok_encoding **encs;
  size_t n_encs;
  tok__vocab **vocabs;
  size_t n_vocabs;
};

/* Per-thread scratch. Grows on demand up to the limits; never shrinks. */
struct tok_scratch {
  tok_limits limits;
  pcre2_match_data *md;
  pcre2_match_context *mctx;
  pcre2_jit_stack *jit_stack;

  uint32_t *ids;
  uint32_t *offsets;
  size_t ids_cap;

  /* arrays of the heap merger (bpe.c), sized for the longest piece seen; part i starts at
   * byte i of the piece */
  uint32_t *part_self; /* piece_cap + 1: the part's own rank */
  uint32_t *part_pair; /* piece_cap + 1: rank of the part joined with the next */
  uint32_t *part_next; /* piece_cap + 1: start of the next part */
  uint32_t *part_prev; /* piece_cap + 1: start of the previous part, or a marker */
  uint64_t *heap;      /* 3 * (piece_cap + 1): (rank << 32 | start) candidates */
  size_t piece_cap;

  tok_work_stats stats;
};

/* Fills err (if not NULL) with code, position, index and a formatted detail line. Returns
 * code so callers can `return tok__fail(...)`. */
tok_err tok__fail(tok_error *err, tok_err code, size_t pos, size_t index, const char *fmt,
                  ...) __attribute__((format(printf, 5, 6)));

/* The index stores, per token, its rank (low 32 bits) and where its bytes are (high 32
 * bits: offset << 8 | length, the length capped at 255), so that a lookup touches the pilot,
 * this entry and the token's bytes, and rejects most strangers on the length alone. */
#define TOK__ENTRY(rank, off, len) ((uint64_t)(rank) | (uint64_t)((off) << 8 | ((len) < 255 ? (len) : 255)) << 32)
#define TOK__MAX_TOKEN_BYTES (1u << 24) /* offsets must fit in 24 bits */

/* Looks up the rank of bytes[0..len); TOK__NO_RANK when it is not a token. */
static inline uint32_t tok__rank_lookup(const tok__vocab *v, const uint8_t *bytes, size_t len)
{
  uint64_t entry = tok__phash_get(&v->index, bytes, len);
  uint32_t rank = (uint32_t)entry, off_len = (uint32_t)(entry >> 32);
  if ((off_len & 255) != (len < 255 ? len : 255) || rank >= v->rank_end) return TOK__NO_RANK;
  if (len >= 255 && v->off[rank + 1] - v->off[rank] != len) return TOK__NO_RANK;
  const uint8_t *token = v->bytes + (off_len >> 8);
  /* len >= 1 always here; comparing the first byte first saves a call on misses */
  if (token[0] != bytes[0] || memcmp(token, bytes, len) != 0) return TOK__NO_RANK;
  return rank;
}

static inline uint32_t tok__pair_rank(const tok__vocab *v, const uint8_t *p)
{
  return v->pair_rank[(uint32_t)p[0] << 8 | p[1]];
}

/* bpe.c: merges a piece that is not a token itself. Writes at most piece_len ranks to
 * ids (and offsets, relative to base, when offsets is not NULL). The scratch arrays must
 * hold piece_len + 1 entries (tok__scratch_fit). */
tok_err tok__bpe_encode_piece(const tok__vocab *v, tok_scratch *s, const uint8_t *piece,
                              size_t piece_len, uint32_t *ids, uint32_t *offsets,
                              uint32_t base, size_t *n_out, tok_error *err);
tok_err tok__scratch_fit(tok_scratch *s, size_t piece_len);

/* The threshold above which the heap merger is used instead of the quadratic scan. */
#define TOK__LONG_PIECE 24
/* For tests: force one merger. */
tok_err tok__bpe_encode_piece_scan(const tok__vocab *v, tok_scratch *s, const uint8_t *piece,
                                   size_t piece_len, uint32_t *ids, size_t *n_out);
tok_err tok__bpe_encode_piece_heap(const tok__vocab *v, tok_scratch *s, const uint8_t *piece,
                                   size_t piece_len, uint32_t *ids, size_t *n_out);

/* vocab.c */
tok_err tok__manifest_parse(const char *file, const char *text, size_t text_len,
                            tok__manifest *out, tok_error *err);
void tok__manifest_free(tok__manifest *m);
tok_err tok__vocab_parse(const char *file, const char *text, size_t text_len, tok__vocab **out,
                         tok_error *err);
void tok__vocab_free(tok__vocab *v);

/* pretok.c: the next piece of subject[0..len) at or after *pos. Returns TOK_OK with
 * [*start, *end) set, or TOK_OK with *start == len when nothing more matches. */
tok_err tok__pretok_compile(tok_encoding *enc, tok_error *err);
tok_err tok__pretok_next(const tok_encoding *enc, tok_scratch *s, const uint8_t *subject,
                         size_t len, size_t pos, size_t *start, size_t *end, tok_error *err);

/* special.c: finds the first special token in text[from..len) that is in set (or any
 * special token when set is NULL). Returns its index in enc->special and its position,
 * or -1. */
long tok__special_find(const tok_encoding *enc, const tok_special_set *set, const uint8_t *text,
                       size_t len, size_t from, size_t *at);

/* base64.c: decodes a string tok_base64_decoded_len accepted */
void tok__base64_decode_unchecked(const char *s, size_t len, uint8_t *out);

/* sha256.c */
void tok__sha256_hex(const void *data, size_t len, char out[65]);

/* embed.c: the vocabulary files built into the binary. */
typedef struct tok__embedded_file {
  const char *name;
  const char *data;
  size_t len;
} tok__embedded_file;
bool tok__embedded_find(const char *name, tok__embedded_file *out);
/* Tells the kernel the embedded copy of a file is no longer needed in memory. */
void tok__embedded_release(const tok__embedded_file *f);

#endif
