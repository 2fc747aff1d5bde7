import { inMemory } from '../helpers/app.js'
import rooms from './rooms.js'

rooms(inMemory)
