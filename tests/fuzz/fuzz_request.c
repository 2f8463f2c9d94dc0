/*
 * fuzz_request.c — fuzz target for the JSON request parser (json.c): any body gives a
 * request or an error with a status, never a crash, and a parsed request respects the
 * limits it was given. Replayed over tests/data/fuzz/request/ by `make test`.
 */
#include <stdlib.h>
#include <string.h>

#include "request.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
  static const tokd_endpoint eps[] = {EP_ENCODE, EP_COUNT, EP_DECODE, EP_TOKENIZE, EP_DETOKENIZE};
  for (size_t i = 0; i < sizeof eps / sizeof eps[0]; i++) {
    tokd_request req;
    tokd_http_error err;
    if (tokd_request_parse_json(eps[i], (const char *)data, size, 8, 1000, &req, &err)) {
      if (req.n_texts > 8 || (req.n_lists > 8) || (req.n_lists && req.list_start[req.n_lists] > 1000)) abort();
      for (size_t t = 0; t < req.n_texts; t++)
        if (req.text_lens[t] != strlen(req.texts[t])) abort();
    } else if (err.status < 400 || err.status > 599 || !err.code || !err.message[0]) {
      abort();
    }
    tokd_request_free(&req);
  }
  return 0;
}
