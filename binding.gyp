{
  "targets": [
    {
      "target_name": "pread_batch",
      "sources": ["src/store/native/pread-batch.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
