CREATE TABLE f (id BIGINT, s STRUCT<a INT, b STRUCT<c VARCHAR>>, tags INT[], emb REAL[3], m MAP<VARCHAR, BIGINT>);
INSERT INTO f VALUES (1, named_struct('a', 1, 'b', named_struct('c', 'x')), make_array(1, 2), make_array(0.5, 0.25, 1.0), map(['k'], [10])), (2, NULL, make_array(), NULL, map(['j', 'k'], [1, NULL]));
ALTER TABLE f RENAME COLUMN "s.a" TO renamed;
INSERT INTO f (id, s) VALUES (3, named_struct('renamed', 3, 'b', named_struct('c', 'z')));
