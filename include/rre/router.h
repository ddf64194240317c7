/*
 * router.h - part of the public interface; included by <rre/rre.h>, never alone.
 */
#ifndef RRE_ROUTER_H
#define RRE_ROUTER_H

#endif
