/*
 * image.h — the one binary format of tables built ahead of time: the built-in
 * vocabularies' models (vocab.c) and backtracking tables (backtrack.c), which
 * tools/gen_bt_image.c writes and bt_image.S embeds, and the files of the table cache.
 *
 * A blob is the head below, then the kind's own fields ("params", a struct of the kind
 * that wrote it), then each section at a 64-byte boundary (offsets from the blob's start),
 * the whole padded to 4096 bytes so that the sections of an embedded blob lie on pages of
 * their own. An image is blobs one after the other; every blob begins with the same head,
 * so one walker steps through an image of mixed kinds. The checksum covers everything after
 * the head; it is set by the writer and checked where bytes come from a file (the cache),
 * not for the executable's own image.
 *
 * Nothing here trusts a blob: tok__image_head_ok and tok__image_sections_ok check that
 * every offset and length stays inside it, before any params or section is read. What
 * the values inside the sections mean is the kind's to check (backtrack.c, values_ok).
 */
#ifndef TOK_IMAGE_H
#define TOK_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOK__IMAGE_MAX_SECTIONS 16

/* The kinds of blob; a kind's version (in the head) changes with its params or sections. */
typedef enum { TOK__IMAGE_MODEL = 1, TOK__IMAGE_BT = 2 } tok__image_kind;

typedef struct tok__image_head {
  char magic[8];        /* TOK__IMAGE_MAGIC */
  uint32_t kind;        /* tok__image_kind */
  uint32_t version;     /* the kind's */
  uint32_t head_len;    /* this head and the params */
  uint32_t n_sections;
  uint64_t fingerprint; /* the model's (backtrack.c): what the blob is of */
  uint64_t blob_len;    /* including the padding */
  uint64_t checksum;    /* tok__image_hash of the bytes after this head */
  uint64_t at[TOK__IMAGE_MAX_SECTIONS], bytes[TOK__IMAGE_MAX_SECTIONS]; /* 0 bytes: absent */
} tok__image_head;

/* The hash of fingerprints and checksums (not cryptographic: a file planted by its own
 * user is trusted that far, and every value is range-checked anyway). */
uint64_t tok__image_mix(uint64_t h, uint64_t v);
uint64_t tok__image_hash(uint64_t h, const void *data, size_t n);

/* The writer: a blob of kind/version with the params (params_len bytes) and n_sections
 * sections (data[i] of bytes[i] bytes; data[i] NULL or bytes[i] 0: absent), checksum set.
 * Returns the malloc'd blob (*len bytes; the caller frees), or NULL when out of memory. */
uint8_t *tok__image_make(uint32_t kind, uint32_t version, uint64_t fingerprint, const void *params,
                         size_t params_len, size_t n_sections, const void *const data[], const uint64_t bytes[],
                         size_t *len);

/* Whether the blob at h (len bytes readable from h, h 8-byte aligned) has a head of this
 * kind, version, params size and section count, and a length within len: then its params
 * (tok__image_params) may be read. */
bool tok__image_head_ok(const tok__image_head *h, size_t len, uint32_t kind, uint32_t version, size_t params_len,
                        size_t n_sections);
static inline const void *tok__image_params(const tok__image_head *h)
{
  return h + 1;
}
/* After tok__image_head_ok: whether every section is 64-byte aligned, inside the blob and
 * of the size want[i] gives — or absent, where bit i of optional is set. */
bool tok__image_sections_ok(const tok__image_head *h, const uint64_t want[], uint32_t optional);
/* Section i (NULL when absent), after both checks. */
static inline void *tok__image_section(const tok__image_head *h, size_t i)
{
  /* never written once checked: an image's read-only pages, or a protected copy */
  return h->bytes[i] ? (void *)(uintptr_t)((const uint8_t *)h + h->at[i]) : NULL;
}

/* Whether the checksum in blob's head matches its bytes (len of them, the whole blob). */
bool tok__image_checksum_ok(const uint8_t *blob, size_t len);
/* Recomputes the checksum of len bytes (at least a head; nothing otherwise). */
void tok__image_seal(uint8_t *blob, size_t len);

/* The walker over the executable's image (bt_image.S): the blob after prev (NULL: the
 * first), or NULL at the end or where a blob's length is not whole (zero, not a multiple
 * of 4096, past the image). Only the length is checked: callers check heads with
 * tok__image_head_ok. */
const tok__image_head *tok__image_builtin_next(const tok__image_head *prev);

#endif
