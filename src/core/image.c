/*
 * image.c — see image.h: the blob format of the built-in image and the table cache, its
 * writer, its checks and the walker over the executable's image.
 */
#include "core/image.h"

#include <stdlib.h>
#include <string.h>

#include "core/phash.h"

static const char MAGIC[8] = {'t', 'o', 'k', 'd', 'i', 'm', 'g', '1'};

/* bt_image.S: the blobs of the built-in vocabularies (empty in the generator itself). */
extern const uint8_t tok__bt_image_start[], tok__bt_image_end[];

uint64_t tok__image_mix(uint64_t h, uint64_t v)
{
  h ^= v * 0x9E3779B97F4A7C15ull;
  h = (h << 29 | h >> 35) * 0xBF58476D1CE4E5B9ull;
  return h ^ h >> 31;
}

uint64_t tok__image_hash(uint64_t h, const void *data, size_t n)
{
  const uint8_t *p = data;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) h = tok__image_mix(h, tok__load64(p + i));
  uint64_t tail = 0;
  if (n > i) memcpy(&tail, p + i, n - i);
  return tok__image_mix(tok__image_mix(h, tail), n);
}

static uint64_t round_up(uint64_t v, uint64_t to)
{
  return (v + to - 1) & ~(to - 1);
}

static uint64_t checksum_of(const uint8_t *blob, size_t len)
{
  return tok__image_hash(0, blob + sizeof(tok__image_head), len - sizeof(tok__image_head));
}

uint8_t *tok__image_make(uint32_t kind, uint32_t version, uint64_t fingerprint, const void *params,
                         size_t params_len, size_t n_sections, const void *const data[], const uint64_t bytes[],
                         size_t *len)
{
  if (n_sections > TOK__IMAGE_MAX_SECTIONS) return NULL;
  tok__image_head h = {.kind = kind, .version = version, .head_len = (uint32_t)(sizeof h + params_len),
                       .n_sections = (uint32_t)n_sections, .fingerprint = fingerprint};
  memcpy(h.magic, MAGIC, sizeof h.magic);
  uint64_t at = round_up(h.head_len, 64);
  for (size_t i = 0; i < n_sections; i++) {
    h.bytes[i] = data[i] ? bytes[i] : 0;
    h.at[i] = at;
    at = round_up(at + h.bytes[i], 64);
  }
  h.blob_len = round_up(at, 4096);
  uint8_t *blob = calloc(1, h.blob_len);
  if (!blob) return NULL;
  memcpy(blob + sizeof h, params, params_len);
  for (size_t i = 0; i < n_sections; i++)
    if (h.bytes[i]) memcpy(blob + h.at[i], data[i], h.bytes[i]);
  memcpy(blob, &h, sizeof h);
  tok__image_seal(blob, h.blob_len);
  *len = h.blob_len;
  return blob;
}

bool tok__image_head_ok(const tok__image_head *h, size_t len, uint32_t kind, uint32_t version, size_t params_len,
                        size_t n_sections)
{
  return len >= sizeof *h && !memcmp(h->magic, MAGIC, sizeof h->magic) && h->kind == kind &&
         h->version == version && h->head_len == sizeof *h + params_len && h->n_sections == n_sections &&
         n_sections <= TOK__IMAGE_MAX_SECTIONS && h->blob_len >= h->head_len && h->blob_len <= len;
}

bool tok__image_sections_ok(const tok__image_head *h, const uint64_t want[], uint32_t optional)
{
  for (uint32_t i = 0; i < h->n_sections; i++) {
    if (h->bytes[i] != want[i] && !(optional >> i & 1 && h->bytes[i] == 0)) return false;
    /* inside the blob, and clear of the head and params */
    if (h->at[i] % 64 || h->at[i] < h->head_len || h->at[i] > h->blob_len || h->bytes[i] > h->blob_len - h->at[i])
      return false;
  }
  return true;
}

bool tok__image_checksum_ok(const uint8_t *blob, size_t len)
{
  const tok__image_head *h = (const tok__image_head *)blob;
  return len >= sizeof *h && h->blob_len == len && checksum_of(blob, len) == h->checksum;
}

void tok__image_seal(uint8_t *blob, size_t len)
{
  tok__image_head h;
  if (len < sizeof h) return;
  memcpy(&h, blob, sizeof h);
  h.checksum = checksum_of(blob, len);
  memcpy(blob, &h, sizeof h);
}

const tok__image_head *tok__image_builtin_next(const tok__image_head *prev)
{
  const uint8_t *p = prev ? (const uint8_t *)prev + prev->blob_len : tok__bt_image_start;
  const uint8_t *end = tok__bt_image_end;
  if (p >= end || (size_t)(end - p) < sizeof(tok__image_head)) return NULL;
  const tok__image_head *h = (const tok__image_head *)p;
  if (h->blob_len == 0 || h->blob_len % 4096 || h->blob_len > (size_t)(end - p)) return NULL;
  return h;
}
