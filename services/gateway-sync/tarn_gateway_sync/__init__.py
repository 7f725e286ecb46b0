"""TARN gateway-sync: keeps HAProxy and ZooKeeper equal to the live Triton instances."""
