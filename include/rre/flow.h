/*
 * flow.h - part of the public interface; included by <rre/rre.h>, never alone.
 */
#ifndef RRE_FLOW_H
#define RRE_FLOW_H

#endif
