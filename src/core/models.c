/*
 * models.c — OpenAI model name -> encoding name, as tiktoken's encoding_for_model does:
 * exact names first, then the longest known prefix. The tables are generated
 * (models_data.h, by tools/gen_models.mjs); the search is written here, once.
 */
#include <string.h>

#include "tok.h"

#include "core/models_data.h"

const char *tok_model_encoding(const char *model, size_t model_len)
{
  for (size_t i = 0; i < sizeof EXACT / sizeof EXACT[0]; i++)
    if (strlen(EXACT[i][0]) == model_len && memcmp(EXACT[i][0], model, model_len) == 0)
      return EXACT[i][1];
  const char *best = NULL;
  size_t best_len = 0;
  for (size_t i = 0; i < sizeof PREFIX / sizeof PREFIX[0]; i++) {
    size_t n = strlen(PREFIX[i][0]);
    if (n <= model_len && n > best_len && memcmp(PREFIX[i][0], model, n) == 0)
      best = PREFIX[i][1], best_len = n;
  }
  return best;
}
