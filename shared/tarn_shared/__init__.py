"""TARN common library."""
