/* SPDX-License-Identifier: MIT */
/* audit.h -- the checks of gatekeeper-audit (audit/): each returns the process's exit status. */
#ifndef GK_AUDIT_H
#define GK_AUDIT_H

/* Recomputes a draw (draw.c): 0 when it holds, 1 naming the first failing step, 2 on bad input. */
int gk_audit_draw(const char *draw_path, const char *participants_path);

/* Walks one business's activity-log hash chain (log.c): 0 intact, 1 naming the first bad row,
 * 2 when it cannot be read. */
int gk_audit_log(const char *business, const char *database_url);

#endif
