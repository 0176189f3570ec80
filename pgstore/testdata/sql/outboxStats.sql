SELECT count(*) FILTER (WHERE state = 'pending'),
       count(*) FILTER (WHERE state = 'failed'),
       min(created_at) FILTER (WHERE state = 'pending')
FROM "freemium".notifications WHERE state IN ('pending', 'failed')
