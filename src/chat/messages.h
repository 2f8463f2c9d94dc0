/*
 * messages.h — vLLM's message and tool normalization before a chat template renders
 * (see messages.c). Internal to the chat module: values live in the render's arena.
 */
#ifndef TOK_CHAT_MESSAGES_H
#define TOK_CHAT_MESSAGES_H

#include "chat/jinja_int.h"

/* A new list of new message dicts, as vLLM's chat parser builds them; openai_format: the
 * template loops over content (parts stay a list). Fails the render (TOK_EINVAL) on a
 * malformed message. msgs must be a list. */
jv tok__chat_normalize_messages(jrender *r, jv msgs, bool openai_format);

/* The request's tools as ChatCompletionToolsParam.model_dump() gives them; None stays
 * None. */
jv tok__chat_normalize_tools(jrender *r, jv tools);

#endif
