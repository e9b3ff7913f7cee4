"""The data path: versions (DVVSet), objects, the quorum cores, the replica, the
coordinator (where a GET and a PUT are coordinated) and key listing."""
