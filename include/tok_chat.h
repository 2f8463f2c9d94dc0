/*
 * tok_chat.h — libtokd's chat-template API, beside tok.h: render a conversation with the
 * model's Jinja chat template exactly as Hugging Face transformers'
 * apply_chat_template(tokenize=False) does, in C, after preparing the messages as vLLM's
 * chat parser does. Installed with tok.h (make install); the engine is src/chat/.
 *
 * The engine implements the subset of Jinja that chat templates use (see docs/chat-templates.md) with jinja2's semantics as transformers configures it: the immutable
 * sandbox, trim_blocks and lstrip_blocks on, the loopcontrols extension, transformers'
 * tojson, raise_exception and strftime_now. A construct outside the subset is refused when
 * the template is parsed (TOK_ETEMPLATE naming it and its line), never rendered wrongly.
 *
 * A parsed template is immutable: any number of threads may render it at once. A render
 * allocates only from its own arena, capped by tok_chat_limits, and stops with an error
 * (TOK_ELIMIT) past the memory, step, output, depth or time bound, so no template and no
 * conversation can hang or exhaust the process. Steps are charged in proportion to the
 * bytes an operation touches (a string method, a filter, a copy), so the step bound is a
 * CPU bound: 50 million steps are about half a second of one core here. Its memory is proportional to what is
 * live: each loop iteration's allocations are released when it ends (namespace values set
 * in it are moved out), so the peak is the parsed conversation plus the values live in
 * enclosing scopes plus one iteration's temporaries per nesting level — O(messages) for
 * the templates that slice `messages[loop.index0:]` per message, never O(messages²). No HTTP and no cJSON in here: the
 * conversation arrives as JSON text and is read by the module's own reader, which keeps
 * what Python keeps (integers apart from floats, U+0000 in strings).
 */
#ifndef TOK_CHAT_H
#define TOK_CHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "tok.h"

typedef struct tok_chat_template tok_chat_template;

/* Parses src[0..len) (UTF-8). On success *out must be released with
 * tok_chat_template_free. TOK_ETEMPLATE with err->pos at the offending byte and the
 * construct named in err->detail; TOK_ELIMIT past 1 MiB of source or 256 levels of
 * nesting. */
tok_err tok_chat_template_parse(const char *src, size_t len, tok_chat_template **out,
                                tok_error *err);
void tok_chat_template_free(tok_chat_template *t);

/* True when vLLM would give this template content parts as a list ("openai" content
 * format): it loops over `m.content` / `m['content']` where m iterates `messages` or a
 * variable set from it (chat.c says the whole rule). Other templates get the parts' text
 * joined by "\n" ("string"). */
bool tok_chat_template_iterates_content(const tok_chat_template *t);

typedef struct tok_chat_limits {
  size_t max_memory;  /* bytes the render may allocate (values, copies); 0: 64 MiB */
  uint64_t max_steps; /* expression and statement evaluations; 0: 50 million (~0.5 s of
                       * CPU here; a 3,000-message template that slices the conversation
                       * per message needs ~25 million) */
  size_t max_output;  /* bytes of rendered text; 0: 16 MiB */
  unsigned max_depth; /* nested macro calls; 0: 64 */
  unsigned max_ms;    /* wall-clock milliseconds the render may take, checked every 65,536
                       * steps (well under a millisecond); 0: no deadline */
} tok_chat_limits;

/* One conversation, as vLLM's chat /tokenize receives it. JSON fields are UTF-8 JSON text
 * (NULL: absent). */
typedef struct tok_chat_request {
  const char *messages_json; /* an array of message objects; required */
  size_t messages_len;
  const char *tools_json; /* an array, or null */
  size_t tools_len;
  const char *documents_json;
  size_t documents_len;
  const char *kwargs_json; /* an object whose members become template variables */
  size_t kwargs_len;
  bool add_generation_prompt;
  bool continue_final_message; /* cut the text after the last message's content */
  const char *bos_token, *eos_token; /* NULL: undefined in the template */
  time_t now;                         /* what strftime_now formats (local time) */
} tok_chat_request;

/* Renders into out (appended; out->limit applies too). TOK_EINVAL for a malformed
 * conversation (not JSON, messages not a list of objects, continue_final_message with
 * add_generation_prompt, ...); TOK_ERENDER when the template fails (its raise_exception
 * message, an undefined value used, a type error: err->detail says which); TOK_ELIMIT past
 * a limit. On failure out->len is restored. Thread-safe for distinct out buffers. */
tok_err tok_chat_render(const tok_chat_template *t, const tok_chat_request *req,
                        const tok_chat_limits *lim, tok_buf *out, tok_error *err);

/* The top-level members of a JSON request body that a chat render reads, found without
 * changing the body: messages, tools, documents and chat_template_kwargs become spans of req,
 * add_generation_prompt (default true, as vLLM), continue_final_message and
 * add_special_tokens (default false for chat, as vLLM) are read. Other members are left to
 * the caller. TOK_EINVAL when the body is not a JSON object or a member has the wrong
 * type. */
tok_err tok_chat_request_from_body(const char *body, size_t len, tok_chat_request *req,
                                   bool *add_special_tokens, tok_error *err);

/* Python's repr() of a float, which json.dumps writes: the shortest digits that read back,
 * "1.0", "0.1", "1e-05", "1e+16". NUL-terminated; cap 32 is always enough. */
void tok_chat_float_repr(char *buf, size_t cap, double f);

#endif
