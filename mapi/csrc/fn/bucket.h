/* Shared by the kernels that follow a PKT_COUNTER or BYTE_COUNTER packet by packet (THRESHOLD,
 * STATS, DIST): what one packet adds to the counter they watch. */
#ifndef MAPI_FN_BUCKET_H
#define MAPI_FN_BUCKET_H

#define MAPI_STEP_PACKETS 0      /* PKT_COUNTER: each packet adds 1 */
#define MAPI_STEP_WIRELEN 1      /* BYTE_COUNTER: each packet adds its wire length */

#endif
