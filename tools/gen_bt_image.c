/*
 * gen_bt_image.c — writes the model and the backtracking encoder's tables of every
 * built-in vocabulary as one image (vocab.c and backtrack.c, "Images"; the blob format is
 * core/image.h), which bt_image.S embeds in libtokd.
 *
 *   gen_bt_image OUT
 *
 * It links libtokd with an empty image, so every table is built here from the embedded
 * vocabularies; a model the backtracker does not apply to is left out. A model's blob is
 * keyed by the sha256 of its rank file, computed here from the embedded bytes. The Makefile runs
 * it whenever the core or a vocabulary changes.
 */
#include <stdio.h>
#include <stdlib.h>

#include "core/internal.h"

/* The sha256 of an encoding's embedded rank file (enc->source names it). */
static bool embedded_sha256(const tok_encoding *enc, char out[65])
{
  tok__embedded_file f;
  if (!enc->source || !tok__embedded_find(enc->source, &f)) return false;
  tok__sha256_hex(f.data, f.len, out);
  return true;
}

int main(int argc, char **argv)
{
  if (argc != 2) {
    fprintf(stderr, "usage: gen_bt_image OUT\n");
    return 2;
  }
  tok_registry *reg;
  tok_error err;
  tok_load_opts opts = {0}; /* every built-in encoding */
  if (tok_registry_load(&opts, &reg, &err) != TOK_OK) {
    fprintf(stderr, "gen_bt_image: %s\n", err.detail);
    return 1;
  }
  FILE *out = fopen(argv[1], "wb");
  if (!out) {
    perror(argv[1]);
    return 1;
  }
  tok_err rc = TOK_OK;
  for (size_t i = 0; i < reg->n_models && rc == TOK_OK; i++) {
    const tok__model *m = reg->models[i];
    const tok_encoding *enc = NULL;
    for (size_t e = 0; e < reg->n_encs && !enc; e++)
      if (reg->encs[e]->model == m) enc = reg->encs[e];
    char sha[65];
    if (enc && !embedded_sha256(enc, sha)) {
      fprintf(stderr, "gen_bt_image: %s: its rank file is not embedded\n", enc->name);
      rc = TOK_EIO;
      break;
    }
    if (enc) rc = tok__model_image_write(m, sha, out);
    if (rc == TOK_OK) rc = tok__bt_image_write(m, out);
  }
  if (fclose(out) != 0) rc = TOK_EIO;
  tok_registry_free(reg);
  if (rc != TOK_OK) {
    fprintf(stderr, "gen_bt_image: cannot write %s\n", argv[1]);
    remove(argv[1]);
    return 1;
  }
  return 0;
}
