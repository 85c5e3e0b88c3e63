{
  "targets": [
    {
      "target_name": "cirrus_store",
      "sources": ["src/store/native/pread-batch.c", "src/store/native/crc32c.c", "src/store/native/durable-write.c", "src/store/native/mapped-buffer.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
