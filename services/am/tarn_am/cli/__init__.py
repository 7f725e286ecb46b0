"""`tarn`, the command line users run: submit, status, scale, stop, logs and simulate."""
