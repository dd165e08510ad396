/* tbevents.h — TensorBoard event files: scalar curves that `tensorboard --logdir DIR`
 * shows, written without TensorFlow.
 *
 * The format (tensorflow/core/lib/io/record_writer.cc, tensorboard/summary/writer/
 * record_writer.py, tensorflow/core/util/event.proto, summary.proto):
 *   - a file named events.out.tfevents.<seconds>.<host>... in the log directory;
 *   - a sequence of TFRecords: uint64 length (little-endian), uint32 masked CRC-32C of
 *     those 8 bytes, the data, uint32 masked CRC-32C of the data, where
 *     masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8;
 *   - each record one serialized Event protobuf: wall_time (field 1, double),
 *     step (2, int64), and either file_version (3, string; the first record,
 *     "brain.Event:2") or summary (5, Summary).  A Summary holds repeated
 *     value (1, Summary.Value) with tag (1, string) and simple_value (2, float).
 * Tags follow the transformers TensorBoard callback: "train/loss", and for metrics
 * logged with the eval_ prefix, "eval/loss".
 * Not for: reading event files (tests/oracle/check_tbevents.py reads ours with the
 * tensorboard package), histograms, images. */
#ifndef CHERRY_TBEVENTS_H
#define CHERRY_TBEVENTS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) of p[0..n), and TFRecord's
 * masking of a CRC (so that a CRC of data that holds CRCs is not degenerate). */
uint32_t crc32c(const void *p, size_t n);
uint32_t crc32c_masked(uint32_t crc);

/* Appends one TFRecord framing data[0..n) to fp.  EX_IOERR on a write error. */
int tfrecord_write(FILE *fp, const char *path, const void *data, size_t n, Error *e);

typedef struct TbWriter {
    FILE *fp;   /* NULL = not open (writes do nothing) */
    char *path; /* the event file */
} TbWriter;

/* Creates DIR (and parents) and a new event file in it, whose first record is the
 * file_version Event.  EX_CANTCREAT when it cannot. */
int tb_open(TbWriter *w, const char *dir, Error *e);
/* The first record of an event file: Event{wall_time, file_version "brain.Event:2"}
 * (tb_open writes it; public so the test can fix the time). */
int tb_write_file_version(TbWriter *w, double wall_time, Error *e);
/* One Event at STEP holding a scalar for each finite vals[i] under tags[i]; flushed
 * so that TensorBoard sees it while training runs. */
int tb_write_scalars(TbWriter *w, long step, double wall_time, const char *const *tags, const double *vals, int n,
                     Error *e);
int tb_close(TbWriter *w, Error *e);

/* The tag of a metric, as the transformers TensorBoard callback rewrites it:
 * "eval_x" -> "eval/x", anything else "x" -> "train/x". */
void tb_tag(const char *metric, char *out, size_t size);

#endif
