/* parquet.h — reading Apache Parquet files as rows of JSON, for the record reader.
 *
 * jsonl_open (jsonl.h) recognises the "PAR1" magic and hands the file here, so every
 * program that reads JSONL records reads Parquet too, with no change of its own.
 * The reader follows the Apache Parquet format specification (parquet-format,
 * src/main/thrift/parquet.thrift and Encodings.md): the thrift compact protocol for
 * the footer and page headers, data pages v1 and v2, dictionary pages, the encodings
 * PLAIN, RLE/bit-packed hybrid, PLAIN_DICTIONARY/RLE_DICTIONARY, DELTA_BINARY_PACKED,
 * DELTA_LENGTH_BYTE_ARRAY, DELTA_BYTE_ARRAY and BYTE_STREAM_SPLIT, definition and
 * repetition levels for nested data (structs, LIST, MAP), and the codecs
 * UNCOMPRESSED, SNAPPY, GZIP, BROTLI, LZ4, LZ4_RAW and ZSTD through Debian's
 * libraries.  Why not Apache Arrow: man/man5/cherry-parquet.5.
 *
 * The whole file is held in memory (mapped when it is a regular file, read when it is
 * a pipe: the footer is at the end).  One row group is decoded at a time.  Every
 * length and offset read from the file is checked against the buffer; a damaged or
 * hostile file is an EX_DATAERR naming the file and, where it applies, the row group
 * and column.  Not for: writing Parquet, or encryption (refused). */
#ifndef CHERRY_PARQUET_H
#define CHERRY_PARQUET_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "err.h"

typedef struct ParquetFile ParquetFile;

/* 1 when the N bytes at P start with the Parquet magic "PAR1". */
int parquet_magic(const void *p, size_t n);

/* Opens a Parquet file held in BUF (LEN bytes).  With OWN, BUF was malloc'd and is
 * freed by parquet_close.  NAME is for messages. */
int parquet_open_mem(ParquetFile **out, void *buf, size_t len, int own, const char *name, Error *e);

/* Opens the rest of stream FP, whose first NPRE bytes (PRE) were already read:
 * a regular file is mapped, anything else read to its end.  FP is not closed. */
int parquet_open_stream(ParquetFile **out, FILE *fp, const void *pre, size_t npre, const char *name, Error *e);

/* The next row as a JSON object (caller json_decref's it); *row == NULL at the end. */
int parquet_next(ParquetFile *p, json_t **row, Error *e);

/* Number of rows in the file, by its footer. */
long long parquet_num_rows(const ParquetFile *p);

void parquet_close(ParquetFile *p);

#endif
