/* array.c - see array.h. */
#include "common/array.h"

#include <stdint.h>
#include <stdlib.h>

void *cf_array_realloc(void *arr, size_t need, size_t *cap, size_t elem)
{
	size_t n = *cap > SIZE_MAX / 2 ? SIZE_MAX : *cap * 2;
	if (n < need)
		n = need;
	if (n < 16)
		n = 16;
	if (!elem || n > SIZE_MAX / elem) {
		cf_err(CF_ENOMEM, "out of memory (an array of %zu elements of %zu bytes)", need, elem);
		return NULL;
	}
	void *p = realloc(arr, n * elem);
	if (!p) {
		cf_err(CF_ENOMEM, "out of memory (an array of %zu elements of %zu bytes)", n, elem);
		return NULL;
	}
	*cap = n;
	return p;
}
