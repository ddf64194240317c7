/*
 * queue.h - part of the public interface; included by <rre/rre.h>, never alone.
 */
#ifndef RRE_QUEUE_H
#define RRE_QUEUE_H

#endif
