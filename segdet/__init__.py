"""segdet"""
