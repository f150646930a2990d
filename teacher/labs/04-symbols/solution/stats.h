/* stats.h: an event counter shared by stats.c and main_b.c. Lab 04: this
 * links with -fcommon but not with -fno-common (gcc's default since gcc 10). */
#ifndef STATS_H
#define STATS_H

extern int events; /* declared here, defined once, in stats.c */

void record(void);

#endif
