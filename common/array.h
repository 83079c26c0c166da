/*
 * array.h - growing an array (git's ALLOC_GROW).
 *
 *     struct item *items = NULL; size_t n = 0, cap = 0;
 *     if ((rc = CF_GROW(items, n + 1, cap)) != CF_OK) goto out;
 *     items[n++] = x;
 *
 * CF_GROW(arr, need, cap) makes room for at least need elements: when cap is
 * smaller it reallocates arr to max(need, 2 * cap, 16) elements and updates
 * cap.  CF_OK, or CF_ENOMEM with a message (arr and cap unchanged) when the
 * allocation fails or the size would overflow.
 */
#ifndef CF_ARRAY_H
#define CF_ARRAY_H

#include <stddef.h>

#include "common/error.h"

/* Reallocate arr to room for max(need, 2 * *cap, 16) elements of elem
 * bytes and set *cap: the new array, or NULL with a CF_ENOMEM message (arr
 * and *cap untouched) when memory or the size arithmetic runs out. */
void *cf_array_realloc(void *arr, size_t need, size_t *cap, size_t elem);

#define CF_GROW(arr, need, cap) __extension__ ({                              \
	int cf_grow_rc_ = CF_OK;                                               \
	if ((need) > (cap)) {                                                  \
		void *cf_grow_p_ = cf_array_realloc((arr), (need), &(cap),     \
						    sizeof(*(arr)));           \
		if (cf_grow_p_)                                                \
			(arr) = cf_grow_p_;                                    \
		else                                                           \
			cf_grow_rc_ = CF_ENOMEM;                               \
	}                                                                      \
	cf_grow_rc_; })

#endif
