-- Issue 18: device passwords never stay in `rejected`.  The receiver now
-- redacts PW= (and NewPW=) before a reject is written; rows written before
-- are redacted here, so that nothing grafana_reader can read holds one.
UPDATE rejected
SET raw = regexp_replace(raw, 'PW=[^;&\r\n]*', 'PW=***', 'g')
WHERE raw LIKE '%PW=%';
