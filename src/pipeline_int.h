/* SPDX-License-Identifier: MIT */
/*
 * pipeline_int.h -- what src/pipeline.c (the engine: connection, batching, replies, deadlines)
 * and src/pipeline_queue.c (the queue operations it carries) share, and nothing outside them.
 * Private because it holds hiredis's reply type, which must not leave the pipeline module.
 */
#ifndef GK_PIPELINE_INT_H
#define GK_PIPELINE_INT_H

#include <stdbool.h>

#include <hiredis/hiredis.h>

#include "gk/pipeline.h"
#include "gk/script.h"

/* How the engine runs one kind of operation (struct gk_op's _kind): the script, who may share a
 * call, the call's KEYS and ARGV, the answer. */
struct gk_op_kind {
    enum gk_script script;
    /* Whether b may share a's call: same business, same shared arguments. NULL for a kind whose
     * script serves one operation per call; a kind that batches has a script that answers with
     * one reply per operation, in order, also for a call of one. */
    bool (*batches_with)(const struct gk_op *a, const struct gk_op *b);
    /* Writes the call's keys and arguments into c (begun by the engine) for the n operations
     * first, first->_mate, ... */
    void (*build)(struct gk_cmd *c, const struct gk_op *first, int n, bool test_clock);
    /* Fills op->_out from op's reply; false when the reply has another shape. */
    bool (*parse)(const redisReply *r, struct gk_op *op);
};

/* Queues op, whose _kind, _in and _out are set, for the next flush. */
void gk_pipeline_submit(struct gk_pipeline *p, struct gk_op *op);

#endif
