/*
 * memory.c — what the loaded tokenizers hold in memory, by tokenizer and structure
 * (tok_registry_memory), for /metrics and `tokd serve --print-memory`.
 *
 * Sizes come from the structures themselves; residency from /proc/self/pagemap over each
 * array's pages, so an array mapped but never touched (an unused encoding's tables in the
 * image, a memo not yet written) counts as its size but not as resident. An array's first and last
 * pages may be shared with a neighbouring heap block, so heap figures may be a page high.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/internal.h"

/* Pages of [p, p + bytes) mapped into this process now: /proc/self/pagemap's "present" bit
 * (mincore(2) would answer "in the page cache" for file pages, which says nothing about
 * this process). Without pagemap, all of it. */
static size_t resident_bytes(const void *p, size_t bytes)
{
  if (!p || !bytes) return 0;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  uintptr_t start = (uintptr_t)p & ~(uintptr_t)(page - 1), end = ((uintptr_t)p + bytes + page - 1) & ~(uintptr_t)(page - 1);
  size_t pages = (end - start) / page, present = 0;
  int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return bytes;
  uint64_t entries[512];
  for (size_t done = 0; done < pages;) {
    size_t n = pages - done < 512 ? pages - done : 512;
    ssize_t got = pread(fd, entries, n * sizeof *entries, (off_t)((start / page + done) * sizeof *entries));
    if (got != (ssize_t)(n * sizeof *entries)) {
      close(fd);
      return bytes;
    }
    for (size_t i = 0; i < n; i++) present += entries[i] >> 63;
    done += n;
  }
  close(fd);
  size_t r = present * page;
  return r < bytes ? r : bytes;
}

void tok__mem_add(tok__mem_acc *acc, const char *structure, const void *p, size_t bytes, bool file_backed)
{
  if (!p || !bytes) return;
  size_t resident = resident_bytes(p, bytes);
  for (size_t i = 0; i < acc->n && i < acc->cap; i++) {
    tok_memory_item *it = &acc->items[i];
    if (it->tokenizer == acc->tokenizer && it->structure == structure && it->file_backed == file_backed) {
      it->bytes += bytes;
      it->resident += resident;
      return;
    }
  }
  if (acc->n < acc->cap)
    acc->items[acc->n] = (tok_memory_item){acc->tokenizer, structure, bytes, resident, file_backed};
  acc->n++;
}

size_t tok_registry_memory(const tok_registry *reg, tok_memory_item *items, size_t cap)
{
  tok__mem_acc acc = {.items = items, .cap = cap};
  for (size_t i = 0; i < reg->n_models; i++) {
    const tok__model *m = reg->models[i];
    acc.tokenizer = "?";
    for (size_t e = 0; e < reg->n_encs; e++)
      if (reg->encs[e]->model == m) {
        acc.tokenizer = reg->encs[e]->name;
        break;
      }
    bool img = m->in_image;
    tok__mem_add(&acc, "vocab", m->off, ((size_t)m->id_end + 1) * sizeof *m->off, img);
    tok__mem_add(&acc, "vocab", m->bytes, m->off[m->id_end], img);
    tok__mem_add(&acc, "vocab_hash", m->index.pilot, (size_t)m->index.n_buckets * sizeof *m->index.pilot, img);
    tok__mem_add(&acc, "vocab_hash", m->index.slot, (size_t)m->index.n * sizeof *m->index.slot, img);
    tok__mem_add(&acc, "vocab_hash", m->index.remap, (size_t)(m->index.m - m->index.n) * sizeof *m->index.remap, img);
    tok__mem_add(&acc, "byte_tables", m->max_len2, 65536, img);
    tok__mem_add(&acc, "byte_tables", m->pair_prio, 65536 * sizeof *m->pair_prio, img);
    if (m->by_list) {
      size_t entries = m->merge_start[m->id_end];
      tok__mem_add(&acc, "merges", m->merge_id, (size_t)m->n_merges * sizeof *m->merge_id, false);
      tok__mem_add(&acc, "merges", m->merge_start, ((size_t)m->id_end + 1) * sizeof *m->merge_start, false);
      tok__mem_add(&acc, "merges", m->merge_left, entries * sizeof *m->merge_left, false);
      tok__mem_add(&acc, "merges", m->merge_prio, entries * sizeof *m->merge_prio, false);
    }
    tok__mem_add(&acc, "merges", m->whole_ok, ((size_t)m->id_end + 63) / 64 * 8, false);
    tok__mem_add(&acc, "vocab", m->literal, ((size_t)m->id_end + 63) / 64 * 8, false);
    tok__bt_memory(m, &acc);
  }
  return acc.n;
}
